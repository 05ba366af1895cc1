package interceptors_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"go.temporal.io/sdk/client"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/workflows"
)

// ExampleDial starts an AccessRequest on behalf of a logged-in person. The token source is
// the person's OIDC session: any oauth2.TokenSource whose tokens carry the ID token in
// Extra("id_token") (request the openid scope). The client seals it to the worker pool's
// public key on every start and update; nothing readable reaches Temporal history.
//
// The start hands the refresh token to the pool, which rotates it from then on, so the token
// source must never refresh it again: a second holder of one rotating refresh token trips the
// IdP's reuse detection, which ends the family and the run's session with it. A static
// source (as here) never refreshes; package login's TokenSource refreshes only until
// login.Dial records the hand-over. Use login.Dial for a login that refreshes itself.
func ExampleDial() {
	ctx := context.Background()

	// tok comes from your login flow (authorization code + PKCE), with an ID token.
	var tok *oauth2.Token

	c, err := interceptors.Dial(ctx, interceptors.DialOptions{
		Client:      client.Options{HostPort: "127.0.0.1:7233", Namespace: "oidcflow"},
		TokenSource: oauth2.StaticTokenSource(tok),
		PublicKey:   os.Getenv("OIDCFLOW_ENVELOPE_PUBLIC_KEY"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue},
		workflows.AccessRequestWorkflow, workflows.AccessRequestInput{
			Resource: "demo", Role: workflows.AccessRead, Duration: 2 * time.Hour, Reason: "debug ticket 42",
		})
	if err != nil {
		log.Fatal(err) // e.g. "interceptors: get the caller's token: ..." when the login expired
	}
	fmt.Println("requested access:", run.GetID())
}
