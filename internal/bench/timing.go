package bench

import (
	"context"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
)

// The phases a worker times (Stats.Metrics: <phase>_count and <phase>_seconds).
const (
	PhaseSpend   = "spend"   // the one-time record of an envelope or reference (Vault)
	PhaseDeposit = "deposit" // a start's session deposit: holder list and session (Vault)
	PhaseCurrent = "current" // an activity's session read, refreshed when due (Vault, IdP)
	PhaseEnd     = "end"     // a run's release: holder list, and revocation by the last (Vault, IdP)
)

var phases = []string{PhaseSpend, PhaseDeposit, PhaseCurrent, PhaseEnd}

// timings accumulates how often and how long each phase ran. It is safe for concurrent use.
type timings struct {
	mu    sync.Mutex
	count map[string]float64
	secs  map[string]float64
}

func newTimings() *timings {
	return &timings{count: map[string]float64{}, secs: map[string]float64{}}
}

func (t *timings) observe(phase string, start time.Time) {
	d := time.Since(start).Seconds()
	t.mu.Lock()
	t.count[phase]++
	t.secs[phase] += d
	t.mu.Unlock()
}

// into adds the timings to a Stats.Metrics map.
func (t *timings) into(m map[string]float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range phases {
		m[p+"_count"] = t.count[p]
		m[p+"_seconds"] = t.secs[p]
	}
}

// timeStores wraps the authenticator's session and one-time stores so that each call is
// timed; it changes nothing else.
func timeStores(t *timings) func(*interceptors.AuthenticatorOptions) {
	return func(o *interceptors.AuthenticatorOptions) {
		o.Sessions = timedSessions{next: o.Sessions, t: t}
		o.OneTime = timedOneTime{next: o.OneTime, t: t}
	}
}

type timedSessions struct {
	next interceptors.SessionStore
	t    *timings
}

func (s timedSessions) Deposit(ctx context.Context, id *identity.Identity, tok *oauth2.Token, holder string) (string, error) {
	defer s.t.observe(PhaseDeposit, time.Now())
	return s.next.Deposit(ctx, id, tok, holder)
}

func (s timedSessions) CurrentIDToken(ctx context.Context, sessionID string) (string, time.Time, error) {
	defer s.t.observe(PhaseCurrent, time.Now())
	return s.next.CurrentIDToken(ctx, sessionID)
}

func (s timedSessions) End(ctx context.Context, sessionID, holder string) error {
	defer s.t.observe(PhaseEnd, time.Now())
	return s.next.End(ctx, sessionID, holder)
}

type timedOneTime struct {
	next interceptors.OneTimeStore
	t    *timings
}

func (o timedOneTime) Spend(ctx context.Context, id, owner string, until time.Time) error {
	defer o.t.observe(PhaseSpend, time.Now())
	return o.next.Spend(ctx, id, owner, until)
}
