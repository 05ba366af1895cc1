//go:build !linux

package upgrade_test

import "os/exec"

// dieWithTest does nothing outside Linux: the test's cleanup kills its workers.
func dieWithTest(*exec.Cmd) {}
