package identity_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/testharness"
)

// TestHydraTokens verifies real ID and JWT access tokens of every dev persona, issued by Ory
// Hydra through the dev login/consent app, and checks the mapped claims against the persona
// file (roles expanded with its hierarchy).
func TestHydraTokens(t *testing.T) {
	s := testharness.Load(t)
	ctx := context.Background()
	file := s.Personas(t)
	h := identity.Hierarchy{RoleImplies: file.Hierarchy.RoleImplies, GroupImplies: file.Hierarchy.GroupImplies}
	issuer, clientID := s.Env("OIDCFLOW_ISSUER"), s.Env("OIDCFLOW_CLIENT_ID")
	v, err := identity.NewVerifier(ctx, identity.VerifierOptions{
		Issuer:    issuer,
		ClientID:  clientID,
		Hierarchy: h,
		// Hydra types its JWT access tokens "JWT"; their audience is the Temporal
		// frontend's, which the starter client is registered with.
		AccessTokenTypes:    []string{"at+jwt", "JWT"},
		AccessTokenAudience: s.Env("OIDCFLOW_TEMPORAL_AUDIENCE"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range file.Personas {
		t.Run(p.Name, func(t *testing.T) {
			tok := s.Login(t, p.Name)
			raw, _ := tok.Extra("id_token").(string)
			want := identity.Identity{
				Subject: p.Subject, Issuer: issuer, Name: p.DisplayName, Email: p.Email, Department: p.Department,
				Roles: h.Expand(p.Roles, p.Groups), Permissions: sorted(p.Permissions), Groups: sorted(p.Groups), ClientID: clientID,
			}
			id, err := v.VerifyIDToken(ctx, raw)
			if err != nil {
				t.Fatalf("ID token: %v", err)
			}
			check(t, "ID token", id, want)
			if !slices.Equal(id.Audience, []string{clientID}) {
				t.Errorf("ID token audience %v", id.Audience)
			}
			at, err := v.VerifyAccessToken(ctx, tok.AccessToken)
			if err != nil {
				t.Fatalf("access token: %v", err)
			}
			check(t, "access token", at, want)
			// Each token only as its own kind.
			if _, err := v.VerifyAccessToken(ctx, raw); !errors.Is(err, identity.ErrInvalidToken) {
				t.Errorf("ID token accepted as access token: %v", err)
			}
			if _, err := v.VerifyIDToken(ctx, tok.AccessToken); !errors.Is(err, identity.ErrInvalidToken) {
				t.Errorf("access token accepted as ID token: %v", err)
			}
			// A refreshed ID token is the same person for the same client.
			ref := s.Refresh(t, tok)
			rawRef, _ := ref.Extra("id_token").(string)
			if rawRef == "" {
				t.Fatal("refresh returned no ID token")
			}
			rid, err := v.VerifyIDToken(ctx, rawRef)
			if err != nil {
				t.Fatalf("refreshed ID token: %v", err)
			}
			if err := v.CheckRefreshed(id, rid); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func check(t *testing.T, what string, got *identity.Identity, want identity.Identity) {
	t.Helper()
	if got.Subject != want.Subject || got.Issuer != want.Issuer || got.Name != want.Name || got.Email != want.Email ||
		got.Department != want.Department || got.ClientID != want.ClientID ||
		!slices.Equal(got.Roles, want.Roles) || !slices.Equal(got.Permissions, want.Permissions) || !slices.Equal(got.Groups, want.Groups) {
		t.Errorf("%s identity\n got  %+v\n want %+v", what, *got, want)
	}
	if got.Expiry.IsZero() {
		t.Errorf("%s identity has no expiry", what)
	}
}

func sorted(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}
