// Package apptest starts real workers and identity-carrying clients against the dev stack
// for integration tests.
package apptest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/workflows"
)

// Env returns the stack's configuration with overrides (name, value pairs) on top.
func Env(t testing.TB, st *testharness.Stack, overrides ...string) *config.Env {
	t.Helper()
	over := map[string]string{}
	for i := 0; i+1 < len(overrides); i += 2 {
		over[overrides[i]] = overrides[i+1]
	}
	env, err := config.New(func(name string) (string, bool) {
		if v, ok := over[name]; ok {
			return v, true
		}
		v := st.Env(name)
		return v, v != ""
	})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// TaskQueue returns a task queue name of its own for one test, so workers of other tests
// never pick up its workflows.
func TaskQueue(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// StartWorker builds a worker with app.NewWorker and runs it until the test ends; then it
// deletes the sweeper schedule the worker made for its task queue.
func StartWorker(t testing.TB, opts app.WorkerOptions) *app.Worker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if opts.Logger == nil {
		// Info: a failed test shows every session the worker refreshed, revoked or swept.
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	w, err := app.NewWorker(ctx, opts)
	if err != nil {
		t.Fatalf("start worker: %v", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(runCtx); err != nil {
			t.Errorf("worker: %v", err)
		}
	}()
	t.Cleanup(func() {
		stop()
		<-done
		deleteSweeperSchedule(w.Client, opts.Env.String("OIDCFLOW_TASK_QUEUE"))
		w.Close()
	})
	return w
}

// DeleteSweeperSchedule deletes, when the test ends, the sweeper schedule that worker
// processes of the test made for queue (StartWorker's workers clean up after themselves).
func DeleteSweeperSchedule(t testing.TB, st *testharness.Stack, queue string) {
	t.Helper()
	t.Cleanup(func() {
		c, err := client.Dial(st.TemporalOptions(st.OperatorTokenSource()))
		if err != nil {
			t.Logf("delete the sweeper schedule of %s: %v", queue, err)
			return
		}
		defer c.Close()
		deleteSweeperSchedule(c, queue)
	})
}

// deleteSweeperSchedule deletes queue's sweeper schedule; one already gone (another worker
// of the test deleted it) is fine.
func deleteSweeperSchedule(c client.Client, queue string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = c.ScheduleClient().GetHandle(ctx, workflows.SweeperScheduleID(queue)).Delete(ctx)
}

// Client dials Temporal as persona: a real login through the dev IdP, sealed envelopes on
// every start, signal and update.
func Client(t testing.TB, st *testharness.Stack, persona string) (client.Client, *oauth2.Token) {
	t.Helper()
	tok := st.Login(t, persona)
	return ClientWithToken(t, st, oauth2.StaticTokenSource(tok)), tok
}

// ClientWithToken dials Temporal with the given token source: its tokens are sealed into
// every start, signal and update. Where the frontend authorizes its callers, the calls carry
// the same person's access token from a login of its own through the starter client (an
// hour long), as the person's own program would: the pool holds the refresh token of ts, and
// tests give ts lifetimes of seconds. Payloads go through the codec server with it when the
// pool encrypts them.
func ClientWithToken(t testing.TB, st *testharness.Stack, ts oauth2.TokenSource) client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var bearer oauth2.TokenSource
	if st.Authorizes() || st.Env("OIDCFLOW_CODEC_ENDPOINT") != "" {
		bearer = oauth2.StaticTokenSource(st.Login(t, subject(t, ts)))
	}
	c, err := interceptors.Dial(ctx, interceptors.DialOptions{
		Client:      st.TemporalOptions(bearer),
		TokenSource: ts,
		PublicKey:   st.Env("OIDCFLOW_ENVELOPE_PUBLIC_KEY"),
	})
	if err != nil {
		t.Fatalf("dial Temporal: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// subject is the sub of ts's ID token (read, not verified: the test's own token).
func subject(t testing.TB, ts oauth2.TokenSource) string {
	t.Helper()
	tok, err := ts.Token()
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	parts := strings.Split(raw, ".")
	var claims struct {
		Sub string `json:"sub"`
	}
	if len(parts) != 3 {
		t.Fatal("the token has no ID token")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(b, &claims) != nil || claims.Sub == "" {
		t.Fatalf("the ID token names no subject (%v)", err)
	}
	return claims.Sub
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
