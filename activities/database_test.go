package activities

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/identity"
)

// noDB fails the test if an activity reaches the database.
type noDB struct{ t *testing.T }

func (d noDB) Begin(context.Context) (pgx.Tx, error) {
	d.t.Fatal("the database was reached before the claims were checked")
	return nil, nil
}

var (
	bob   = &identity.Identity{Subject: "bob", Roles: []string{"engineer"}, Department: "engineering"}
	alice = &identity.Identity{Subject: "alice", Roles: []string{"admin"}, Department: "it"}
	erin  = &identity.Identity{Subject: "erin", Department: "engineering"}
)

func TestDatabaseActivitiesCheckClaimsFirst(t *testing.T) {
	grant := GrantAccessInput{RequestID: "wf-1", Requester: "bob", Department: "engineering",
		Database: "demo", Access: AccessRead, ValidUntil: time.Now().Add(time.Hour)}
	moved := &identity.Identity{Subject: "bob", Roles: []string{"engineer"}, Department: "sales"}
	revoke := RevokeAccessInput{RequestID: "wf-1", Requester: "bob"}
	for _, tc := range []struct {
		name string
		who  *identity.Identity
		run  func(context.Context, *DatabaseActivities) error
		typ  string
	}{
		{"grant without identity", nil, func(ctx context.Context, a *DatabaseActivities) error {
			_, err := a.GrantAccess(ctx, grant)
			return err
		}, identity.TypeUnauthenticated},
		{"grant for someone else", erin, func(ctx context.Context, a *DatabaseActivities) error {
			_, err := a.GrantAccess(ctx, grant)
			return err
		}, identity.TypeForbidden},
		{"grant after a department change", moved, func(ctx context.Context, a *DatabaseActivities) error {
			_, err := a.GrantAccess(ctx, grant)
			return err
		}, identity.TypeForbidden},
		{"revoke by a stranger", erin, func(ctx context.Context, a *DatabaseActivities) error {
			_, err := a.RevokeAccess(ctx, revoke)
			return err
		}, identity.TypeForbidden},
		{"list grants by a non-admin", bob, func(ctx context.Context, a *DatabaseActivities) error {
			_, err := a.ListGrants(ctx, ListGrantsInput{})
			return err
		}, identity.TypeForbidden},
		{"sweep by a non-admin", bob, func(ctx context.Context, a *DatabaseActivities) error {
			_, err := a.SweepExpired(ctx, SweepExpiredInput{Now: time.Now()})
			return err
		}, identity.TypeForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.who != nil {
				ctx = identity.WithActivity(ctx, tc.who)
			}
			err := tc.run(ctx, &DatabaseActivities{DB: noDB{t}})
			var app *temporal.ApplicationError
			require.ErrorAs(t, err, &app)
			require.Equal(t, tc.typ, app.Type())
			require.True(t, app.NonRetryable())
		})
	}
}

func TestGrantAccessRejectsBadInput(t *testing.T) {
	ctx := identity.WithActivity(context.Background(), bob)
	for name, in := range map[string]GrantAccessInput{
		"bad database": {RequestID: "r", Requester: "bob", Database: `demo"; DROP ROLE x`, Access: AccessRead, ValidUntil: time.Now()},
		"bad access":   {RequestID: "r", Requester: "bob", Database: "demo", Access: "owner", ValidUntil: time.Now()},
		"no until":     {RequestID: "r", Requester: "bob", Database: "demo", Access: AccessRead},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := (&DatabaseActivities{DB: noDB{t}}).GrantAccess(ctx, in)
			var app *temporal.ApplicationError
			require.ErrorAs(t, err, &app)
			require.Equal(t, TypeInvalidInput, app.Type())
		})
	}
}

var identifier = regexp.MustCompile(`^jit_[a-z0-9_]{0,20}_[0-9a-f]{16}$`)

func TestRoleName(t *testing.T) {
	require.Equal(t, RoleName("wf-1", "bob"), RoleName("wf-1", "bob"), "deterministic")
	require.NotEqual(t, RoleName("wf-1", "bob"), RoleName("wf-2", "bob"))
	require.Regexp(t, identifier, RoleName("wf-1", "Bob.O'Brien@Example.COM; DROP ROLE"))
	require.Regexp(t, identifier, RoleName("wf-1", "7f3c2a1e-0000-4000-8000-000000000000-very-long-subject"))
}

func FuzzRoleName(f *testing.F) {
	f.Add("wf-1", "bob")
	f.Add("", "")
	f.Add("a\x00b", "ü\"'; --")
	f.Fuzz(func(t *testing.T, requestID, subject string) {
		name := RoleName(requestID, subject)
		if !identifier.MatchString(name) || len(name) > 63 {
			t.Fatalf("RoleName(%q, %q) = %q: not a safe identifier", requestID, subject, name)
		}
	})
}

func TestValidUntilLiteral(t *testing.T) {
	at := time.Date(2026, 11, 28, 16, 0, 0, 123456000, time.FixedZone("x", 3600))
	require.Equal(t, "'2026-11-28 15:00:00.123456+00'", validUntilLiteral(at))
}
