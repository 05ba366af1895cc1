// Package internal_test checks the layers of the module: which package may depend on which.
package internal_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/oidcflow/oidcflow"

// deps returns every package pkg depends on, transitively, itself included (go list -deps;
// test-only imports are not counted).
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	cmd := exec.Command(gobin, "list", "-deps", module+"/"+pkg)
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
	}
	return strings.Fields(string(out))
}

// TestLayers: the starter CLI carries neither the worker's composition root nor the dev
// identity provider; the dev launcher carries no activities; workflow code reaches identity
// through package identity, not the transport package interceptors.
func TestLayers(t *testing.T) {
	for _, tc := range []struct {
		pkg, mustNot string
	}{
		{"internal/cli", "internal/devstack/idp"},
		// NOTE: this check passes only once internal/cli builds its verifier without
		// internal/app (the CLI's use of the public worker kit).
		{"internal/cli", "internal/app"},
		{"internal/devstack", "activities"},
		{"workflows", "interceptors"},
	} {
		t.Run(tc.pkg+" without "+tc.mustNot, func(t *testing.T) {
			if slices.Contains(deps(t, tc.pkg), module+"/"+tc.mustNot) {
				t.Errorf("%s depends on %s", tc.pkg, tc.mustNot)
			}
		})
	}
}
