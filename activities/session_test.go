package activities

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/tokenstore"
)

type fakeRefresher struct {
	session  tokenstore.Session
	freshErr error
}

func (f *fakeRefresher) Fresh(ctx context.Context, id string) (tokenstore.Session, error) {
	if f.freshErr != nil {
		return tokenstore.Session{}, f.freshErr
	}
	return f.session, nil
}

func (f *fakeRefresher) RefreshDue(s tokenstore.Session) time.Time {
	return s.Expiry.Add(-30 * time.Second)
}

// as runs the activity as the identity the interceptor verified for session id.
func as(id string) context.Context {
	return identity.WithActivity(context.Background(), &identity.Identity{Subject: "bob", SessionID: id})
}

func TestRefreshSession(t *testing.T) {
	now := time.Now()
	id := tokenstore.NewSessionID()
	f := &fakeRefresher{session: tokenstore.Session{ID: id, AccessToken: "AT-SECRET", RefreshToken: "RT-SECRET",
		Expiry: now.Add(time.Hour), Refreshed: now.Add(time.Second), Refreshes: 3}}
	a := &SessionActivities{Refresher: f}
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	env.SetWorkerOptions(worker.Options{BackgroundActivityContext: as(id)})
	v, err := env.ExecuteActivity(a.RefreshSession, RefreshSessionInput{SessionID: id})
	if err != nil {
		t.Fatal(err)
	}
	var res RefreshSessionResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	if res.SessionID != id || !res.Refreshed || res.Refreshes != 3 || !res.RefreshDue.Equal(f.session.Expiry.Add(-30*time.Second)) {
		t.Fatalf("result %+v", res)
	}
	raw := fmt.Sprintf("%+v", res)
	if len(raw) == 0 || containsSecret(raw) {
		t.Fatal("token in result")
	}
}

func containsSecret(s string) bool {
	for i := 0; i+6 <= len(s); i++ {
		if s[i:i+6] == "SECRET" {
			return true
		}
	}
	return false
}

func TestSessionErrors(t *testing.T) {
	for _, tc := range []struct {
		name         string
		err          error
		typ          string
		nonRetryable bool
		delay        time.Duration
	}{
		{"reauth", fmt.Errorf("tokenstore: refused: %w", identity.ErrReauthRequired), identity.TypeReauthRequired, true, 0},
		{"bad id", fmt.Errorf("%w: length 3", tokenstore.ErrInvalidSessionID), TypeInvalidInput, true, 0},
		{"429", fmt.Errorf("x: %w", &tokenstore.RateLimitedError{Op: "idp", RetryAfter: 7 * time.Second}), TypeRateLimited, false, 7 * time.Second},
		{"5xx", fmt.Errorf("x: %w", tokenstore.ErrUnavailable), "", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeRefresher{freshErr: tc.err}
			a := &SessionActivities{Refresher: f}
			{
				_, err := a.RefreshSession(as("x"), RefreshSessionInput{SessionID: "x"})
				var ae *temporal.ApplicationError
				if tc.typ == "" {
					if errors.As(err, &ae) || !errors.Is(err, tokenstore.ErrUnavailable) {
						t.Fatalf("err %v", err)
					}
					return
				}
				if !errors.As(err, &ae) || ae.Type() != tc.typ || ae.NonRetryable() != tc.nonRetryable || ae.NextRetryDelay() != tc.delay {
					t.Fatalf("err %#v", err)
				}
			}
		})
	}
}

// TestRefreshSessionIsTheCallersOwn: a session id from history, named in the input of a
// task running as someone else (or as nobody), is refused before anything is refreshed.
func TestRefreshSessionIsTheCallersOwn(t *testing.T) {
	f := &fakeRefresher{freshErr: errors.New("must not be called")}
	a := &SessionActivities{Refresher: f}
	for name, ctx := range map[string]context.Context{
		"nobody":          context.Background(),
		"another session": as("mine"),
	} {
		_, err := a.RefreshSession(ctx, RefreshSessionInput{SessionID: "victim"})
		var ae *temporal.ApplicationError
		if !errors.As(err, &ae) || ae.Type() != identity.TypeUnauthenticated {
			t.Errorf("%s: %v", name, err)
		}
	}
}

type failingSweeper struct{ oneTimeSwept bool }

func (f *failingSweeper) SweepSessions(context.Context) (int, error) {
	return 2, errors.New("a session of a newer format was skipped")
}

func (f *failingSweeper) SweepOneTime(context.Context) (int, error) {
	f.oneTimeSwept = true
	return 3, nil
}

// TestSweepSessionsRunsBothSteps: a sessions step that fails (a record a newer worker wrote)
// does not keep expired one-time records: both steps run and the failure is reported.
func TestSweepSessionsRunsBothSteps(t *testing.T) {
	s := &failingSweeper{}
	a := &SessionActivities{Refresher: &fakeRefresher{}, Sweeper: s}
	res, err := a.SweepSessions(identity.WithPool(context.Background()), SweepSessionsInput{})
	if err == nil || !s.oneTimeSwept || res.SessionsEnded != 2 || res.OneTimeRemoved != 3 {
		t.Fatalf("SweepSessions = %+v, %v; one-time step ran: %v", res, err, s.oneTimeSwept)
	}
}

type endLog struct{ ended []string }

func (e *endLog) End(_ context.Context, sessionID, holder string) error {
	e.ended = append(e.ended, sessionID+" "+holder)
	return nil
}

// TestEndSession: only the pool ends a session (a person's identity does not, even for the
// session it holds), and a pool without Sessions fails the call for good, so the run closes
// and the sweeper ends the session.
func TestEndSession(t *testing.T) {
	log := &endLog{}
	a := &SessionActivities{Refresher: &fakeRefresher{}, Sessions: log}
	in := EndSessionInput{SessionID: "s1", Holder: "wf-1"}
	var appErr *temporal.ApplicationError
	if err := a.EndSession(as("s1"), in); !errors.As(err, &appErr) || appErr.Type() != identity.TypeUnauthenticated {
		t.Fatalf("a person's EndSession: %v, want %s", err, identity.TypeUnauthenticated)
	}
	if err := a.EndSession(identity.WithPool(context.Background()), in); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(log.ended) != "[s1 wf-1]" {
		t.Fatalf("ended %v", log.ended)
	}
	a.Sessions = nil
	if err := a.EndSession(identity.WithPool(context.Background()), in); !errors.As(err, &appErr) || !appErr.NonRetryable() {
		t.Fatalf("EndSession without Sessions: %v, want a non-retryable error", err)
	}
}
