package workercreds_test

import (
	"context"
	"testing"

	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/tokenstore/workercreds"
)

// The worker client gets a client-credentials token from Hydra (discovered from the issuer),
// reused across calls and active according to introspection.
func TestIntegrationWorkerToken(t *testing.T) {
	s := testharness.Load(t)
	ts, err := workercreds.TokenSource(context.Background(), workercreds.Options{
		Issuer: s.Env("OIDCFLOW_ISSUER"), ClientID: s.Env("OIDCFLOW_WORKER_CLIENT_ID"), ClientSecret: s.Env("OIDCFLOW_WORKER_CLIENT_SECRET"),
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	b, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	if a.AccessToken != b.AccessToken {
		t.Fatal("token not reused")
	}
	if in := s.Introspect(t, a.AccessToken); !in.Active || in.ClientID != s.Env("OIDCFLOW_WORKER_CLIENT_ID") {
		t.Fatalf("introspection %+v", in)
	}
}
