package activities

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/tokenstore"
)

type fakeRefresher struct {
	session   tokenstore.Session
	freshErr  error
	revokeErr error
	revoked   []string
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

func (f *fakeRefresher) Revoke(ctx context.Context, id string) error {
	f.revoked = append(f.revoked, id)
	return f.revokeErr
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
			f := &fakeRefresher{freshErr: tc.err, revokeErr: tc.err}
			a := &SessionActivities{Refresher: f}
			for _, call := range []func() error{
				func() error {
					_, err := a.RefreshSession(context.Background(), RefreshSessionInput{SessionID: "x"})
					return err
				},
				func() error {
					_, err := a.EndSession(context.Background(), EndSessionInput{SessionID: "x"})
					return err
				},
			} {
				err := call()
				var ae *temporal.ApplicationError
				if tc.typ == "" {
					if errors.As(err, &ae) || !errors.Is(err, tokenstore.ErrUnavailable) {
						t.Fatalf("err %v", err)
					}
					continue
				}
				if !errors.As(err, &ae) || ae.Type() != tc.typ || ae.NonRetryable() != tc.nonRetryable || ae.NextRetryDelay() != tc.delay {
					t.Fatalf("err %#v", err)
				}
			}
		})
	}
}

func TestEndSession(t *testing.T) {
	f := &fakeRefresher{}
	a := &SessionActivities{Refresher: f}
	id := tokenstore.NewSessionID()
	res, err := a.EndSession(context.Background(), EndSessionInput{SessionID: id})
	if err != nil || !res.Ended || res.SessionID != id || len(f.revoked) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
}
