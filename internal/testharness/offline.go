package testharness

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
)

// errOffline is what every call of the Offline authenticator fails with.
var errOffline = errors.New("testharness: replay tried to reach Vault or the IdP")

// Offline returns an interceptors.Authenticator that fails t on every call: a replay of a
// saved history must find every identity it needs recorded in the history.
func Offline(t testing.TB) interceptors.Authenticator { return offline{t} }

type offline struct{ t testing.TB }

func (o offline) Open(context.Context, interceptors.Operation, []byte) (*identity.Identity, error) {
	o.t.Error(errOffline)
	return nil, errOffline
}

func (o offline) Resume(context.Context, string) (*identity.Identity, error) {
	o.t.Error(errOffline)
	return nil, errOffline
}

func (o offline) End(context.Context, string, string) error {
	o.t.Error(errOffline)
	return errOffline
}

func (o offline) Spend(context.Context, string, string, time.Time) error {
	o.t.Error(errOffline)
	return errOffline
}

func (o offline) SpendEnvelope(context.Context, interceptors.Operation, []byte) error {
	o.t.Error(errOffline)
	return errOffline
}
