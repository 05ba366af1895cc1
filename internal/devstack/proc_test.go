package devstack

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCheckPortsFree(t *testing.T) {
	ln, err := net.Listen("tcp", Host+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if err := checkPortsFree(port); !errors.Is(err, ErrPortInUse) {
		t.Errorf("checkPortsFree(busy) = %v, want ErrPortInUse", err)
	}
}

func TestServerErrorMessage(t *testing.T) {
	log := filepath.Join(t.TempDir(), "hydra.log")
	os.WriteFile(log, []byte("starting\nlisten tcp 127.0.0.1:4444: bind: address already in use\n\n"), 0o644)
	err := error(&ServerError{Server: "hydra", Ports: []int{4444, 4445}, Log: log, Err: ErrPortInUse, logPath: log, logFrom: 9})
	msg := err.Error()
	for _, want := range []string{"hydra failed to start", "port 4444/4445", "log " + log, "port already in use", "address already in use"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if !errors.Is(err, ErrPortInUse) {
		t.Errorf("ServerError does not unwrap")
	}
}

func TestSpawnAndStop(t *testing.T) {
	dir := t.TempDir()
	pidPath := filepath.Join(dir, "sleep.pid")
	// A shell that starts a child in its group: stop must end both.
	p, err := spawn(dir, filepath.Join(dir, "sleep.log"), pidPath, nil, nil, "/bin/sh", "-c", "sleep 300 & sleep 301")
	if err != nil {
		t.Fatal(err)
	}
	if readPid(pidPath) != p.pid {
		t.Fatalf("pid file %d, process %d", readPid(pidPath), p.pid)
	}
	// Start returns once the child has begun exec, but the kernel fills in the new command
	// line a little later: until then /proc/<pid>/cmdline reads empty. Wait for the shell
	// to show its command line and to have started both children (three group members);
	// the deadline only keeps a broken spawn from hanging the test.
	if !eventually(func() bool { return alive(p.pid, "sleep 301") && len(groupMembers(p.pid)) >= 3 }) {
		t.Fatalf("process %d: alive %v, group %v", p.pid, alive(p.pid, "sleep 301"), groupMembers(p.pid))
	}
	if alive(p.pid, "some-other-binary") {
		t.Errorf("alive ignores the command line")
	}
	if err := stop(p.pid, "sleep 301", syscall.SIGTERM, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	if m := groupMembers(p.pid); len(m) != 0 {
		t.Errorf("processes left in the group: %v", m)
	}
}

// eventually polls cond until it holds or a generous deadline passes, and reports whether
// it held. It asserts nothing about how long that took.
func eventually(cond func() bool) bool {
	for end := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}
