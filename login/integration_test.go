package login_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"testing"
	"time"

	"github.com/oidcflow/oidcflow/internal/devstack/idp"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/login"
)

// devBrowser picks persona on the dev stack's login page, as a person would in a browser.
func devBrowser(st *testharness.Stack, persona string) func(context.Context, string) error {
	return func(ctx context.Context, authURL string) error {
		jar, err := cookiejar.New(nil)
		if err != nil {
			return err
		}
		_, err = idp.PickPersona(ctx, &http.Client{Jar: jar, Timeout: 30 * time.Second}, authURL, st.Env("OIDCFLOW_LOGIN_URL"), persona)
		return err
	}
}

// A login through the real IdP is saved and opened again; a second login replaces it and
// revokes the replaced refresh token; a login from another issuer is not used.
func TestIntegrationLoginOpen(t *testing.T) {
	st := testharness.Load(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := login.Options{Issuer: st.Env("OIDCFLOW_ISSUER"), ClientID: st.Env("OIDCFLOW_CLIENT_ID"),
		CachePath: filepath.Join(t.TempDir(), "bob.json")}
	if _, err := login.Open(ctx, opts); !errors.Is(err, login.ErrNotLoggedIn) {
		t.Fatalf("Open before any login: %v", err)
	}
	ts, err := login.Login(ctx, login.LoginOptions{Options: opts, Browser: devBrowser(st, "bob")})
	if err != nil {
		t.Fatal(err)
	}
	first, err := ts.Session()
	if err != nil || first.Subject == "" || first.RefreshToken == "" {
		t.Fatalf("session after login: %v, %v", first, err)
	}
	opened, err := login.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := opened.Token()
	if err != nil || tok.Extra("id_token") == nil || tok.AccessToken != first.AccessToken {
		t.Fatalf("token of the opened login: %v", err)
	}
	if _, err := login.Login(ctx, login.LoginOptions{Options: opts, Browser: devBrowser(st, "bob")}); err != nil {
		t.Fatal(err)
	}
	if in := st.Introspect(t, first.RefreshToken); in.Active {
		t.Error("the replaced login's refresh token is still active")
	}
	other := opts
	other.Issuer = "https://other.example/"
	var expired *login.SessionExpiredError
	if _, err := login.Open(ctx, other); !errors.As(err, &expired) {
		t.Errorf("Open for another issuer: %v", err)
	}
}
