// Package upgrade holds the acceptance test of a worker pool upgrade: runs started on a
// worker built from an earlier release (out of the repository's git history) are left in
// flight, that worker is stopped, and a worker of the current code finishes every run on
// the same task queue against the real dev stack. It has no code of its own; see
// upgrade_test.go.
package upgrade
