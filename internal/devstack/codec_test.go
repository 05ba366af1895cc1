package devstack

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCodecService: the codec service runs `worker codec-server` on PortCodec with the
// stack's env file and the dev TLS files, and refuses to start before the env file exists.
func TestCodecService(t *testing.T) {
	l, err := New(Options{Root: t.TempDir(), Executable: "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	s := l.codec()
	if s.name != "codec" || !slices.Equal(s.ports, []int{PortCodec}) || !strings.HasPrefix(s.binary, l.state) {
		t.Errorf("service %s ports %v binary %s", s.name, s.ports, s.binary)
	}
	argv, env, cred, err := s.command()
	if err != nil || cred != nil {
		t.Fatal(err, cred)
	}
	if len(argv) != 2 || argv[0] != s.binary || argv[1] != "codec-server" {
		t.Errorf("argv %v", argv)
	}
	for _, want := range []string{
		"OIDCFLOW_ENV_FILE=" + l.EnvFile(), "OIDCFLOW_CODEC_LISTEN=127.0.0.1:8234",
		"OIDCFLOW_CODEC_TLS_CERT=" + l.path(TLSDir, "cert.pem"), "OIDCFLOW_CODEC_TLS_KEY=" + l.path(TLSDir, "key.pem"),
		"OIDCFLOW_CODEC_ORIGINS=http://127.0.0.1:8233", "OIDCFLOW_TEMPORAL_AUDIENCE=temporal",
	} {
		if !slices.Contains(env, want) {
			t.Errorf("env lacks %s", want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.prepare(ctx); err == nil || !strings.Contains(err.Error(), "after the other servers") {
		t.Errorf("prepare without an env file: %v", err)
	}
	if err := s.ready(ctx); err == nil {
		t.Error("ready with nothing listening")
	}
	if err := s.seed(ctx); err != nil {
		t.Fatal(err)
	}
	if l.env[EnvCodecEndpoint] != "https://127.0.0.1:8234" || l.env[EnvCodecCAFile] != l.path(TLSDir, "ca.pem") {
		t.Errorf("seeded env %v", l.env)
	}
	if _, err := envFile(l.env); err != nil {
		t.Errorf("the codec's env values are not all documented: %v", err)
	}
}
