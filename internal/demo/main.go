// Command demo is the placeholder demo of `make demo`: on the running dev stack it logs
// bob in through the real authorization code flow with PKCE (Hydra and the dev
// login/consent app), verifies his ID token and prints the claims a workflow would see, then
// the Temporal Web UI address. It does not start a workflow yet; the access-request story
// replaces it.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/oidcflow/oidcflow/internal/testharness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := testharness.Open()
	if err != nil {
		return fmt.Errorf("%w (run `make up`)", err)
	}
	cfg := s.OAuth2Config()
	fmt.Println("demo: logging in as bob (authorization code + PKCE through Hydra)")
	tok, err := testharness.PersonaLogin(ctx, cfg, s.Env("OIDCFLOW_LOGIN_URL"), "bob")
	if err != nil {
		return err
	}
	provider, err := oidc.NewProvider(ctx, s.Env("OIDCFLOW_ISSUER"))
	if err != nil {
		return err
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		return fmt.Errorf("ID token: %w", err)
	}
	var c struct {
		Name        string   `json:"name"`
		Email       string   `json:"email"`
		Department  string   `json:"department"`
		Roles       []string `json:"roles"`
		Permissions []string `json:"permissions"`
	}
	if err := idt.Claims(&c); err != nil {
		return err
	}
	fmt.Printf("demo: verified %s (sub %s, iss %s): department %s, roles %v, permissions %v; token valid until %s\n",
		c.Name, idt.Subject, idt.Issuer, c.Department, c.Roles, c.Permissions, tok.Expiry.Format(time.RFC3339))
	fmt.Printf("demo: Temporal Web UI: %s/namespaces/%s/workflows\n", s.Env("OIDCFLOW_TEMPORAL_UI_URL"), s.Env("TEMPORAL_NAMESPACE"))
	return nil
}
