package devstack

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/oidcflow/oidcflow/internal/devtls"
)

// codec runs the payload codec server (`worker codec-server`) on PortCodec over HTTPS, with
// the dev CA's loopback certificate from TLSDir (package devtls) and the stack's env file, so
// it logs in to Vault with the worker's AppRole and checks access tokens against Hydra.
//
// It is late: it reads the env file, so Up starts it once Vault and Hydra are seeded and the
// env file is written, then writes the file again with what its seed adds
// (OIDCFLOW_CODEC_ENDPOINT, OIDCFLOW_CODEC_CA_FILE). The worker binary is built into the
// state folder (go build ./worker) at each start.
func (l *Launcher) codec() *service {
	dir := l.path("codec")
	exe := filepath.Join(dir, "oidcflow-codec")
	s := &service{name: "codec", binary: exe, ports: []int{PortCodec}, stopSig: syscall.SIGTERM, late: true}
	s.prepare = func(ctx context.Context) error {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if _, err := devtls.Ensure(l.path(TLSDir)); err != nil {
			return err
		}
		if _, err := os.Stat(l.EnvFile()); err != nil {
			return fmt.Errorf("the codec server reads %s: start it after the other servers are seeded: %w", l.rel(l.EnvFile()), err)
		}
		cmd := exec.CommandContext(ctx, "go", "build", "-o", exe, "./worker")
		cmd.Dir = l.root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./worker: %w\n%s", err, out)
		}
		return nil
	}
	s.command = func() ([]string, []string, *syscall.Credential, error) {
		return []string{exe, "codec-server"}, baseEnv(codecEnv(l)...), nil, nil
	}
	s.ready = func(ctx context.Context) error { return codecHealthy(ctx, devtls.FilesIn(l.path(TLSDir))) }
	s.seed = func(context.Context) error {
		// Workers encrypt payloads once there is a codec server to read them with.
		l.setEnv(EnvCodecEndpoint, CodecURL(), EnvCodecCAFile, devtls.FilesIn(l.path(TLSDir)).CA,
			EnvEncryptPayloads, "true")
		return nil
	}
	return s
}

// codecEnv is the codec server's environment beyond baseEnv: the stack's env file and its
// own settings.
func codecEnv(l *Launcher) []string {
	f := devtls.FilesIn(l.path(TLSDir))
	return []string{
		"OIDCFLOW_ENV_FILE=" + l.EnvFile(),
		"OIDCFLOW_CODEC_LISTEN=" + hostPort(PortCodec),
		"OIDCFLOW_CODEC_TLS_CERT=" + f.Cert,
		"OIDCFLOW_CODEC_TLS_KEY=" + f.Key,
		"OIDCFLOW_CODEC_ORIGINS=" + TemporalUIURL(),
		"OIDCFLOW_TEMPORAL_AUDIENCE=" + TemporalAudience,
		"OIDCFLOW_LOG_FORMAT=text",
	}
}

// codecHealthy probes GET /healthz over TLS, trusting only the dev CA.
func codecHealthy(ctx context.Context, f devtls.Files) error {
	pool, err := f.CertPool()
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, CodecURL()+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s/healthz: %s", CodecURL(), resp.Status)
	}
	return nil
}
