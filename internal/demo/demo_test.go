package main

import (
	"testing"
	"time"

	"github.com/oidcflow/oidcflow/internal/testharness"
)

// TestDemo runs `make demo`'s story with a short grant, so the demo keeps working.
func TestDemo(t *testing.T) {
	testharness.Load(t)
	if err := run(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}
