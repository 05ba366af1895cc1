//go:build !unix

package login

// lockFile does not lock across processes on this platform; the in-process mutex of the
// TokenSource still serializes refreshes within one process.
func lockFile(string) (func(), error) { return func() {}, nil }
