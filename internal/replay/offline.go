package replay

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
)

// offline is the gate's interceptors.Authenticator: every call fails with ErrReachedOut and
// is remembered, so that a replay that reached out fails even when the code swallowed the
// error. The SDK's replayer runs no activity, local ones included, so no call is expected.
type offline struct {
	mu    sync.Mutex
	calls []string
}

func (o *offline) called(method string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, method)
	return fmt.Errorf("%w (%s)", ErrReachedOut, method)
}

// err reports the calls made, if any.
func (o *offline) err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.calls) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %v", ErrReachedOut, o.calls)
}

func (o *offline) Open(context.Context, interceptors.Operation, []byte) (*identity.Identity, error) {
	return nil, o.called("Open")
}

func (o *offline) Resume(context.Context, string) (*identity.Identity, error) {
	return nil, o.called("Resume")
}

func (o *offline) End(context.Context, string, string) error { return o.called("End") }

func (o *offline) Spend(context.Context, string, string, time.Time) error {
	return o.called("Spend")
}

func (o *offline) SpendEnvelope(context.Context, interceptors.Operation, []byte) error {
	return o.called("SpendEnvelope")
}
