package devstack

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"syscall"

	"go.temporal.io/sdk/client"
)

// DynamicConfig holds the dev server's dynamic config values (JSON) beyond the CLI's own.
// Worker Deployment Versioning needs none turned on: server 1.29 has
// system.enableDeploymentVersions and frontend.workerVersioningWorkflowAPIs on by default. A
// build that stopped being current is first checked for drainage (no open run pinned to it)
// a grace period later, then at an interval, minutes each by default; seconds here, so that a
// roll to a new build can be watched, and tested, to the end. The grace period covers the
// delay of visibility, which a single SQLite server does not have.
var DynamicConfig = map[string]string{
	"matching.wv.VersionDrainageStatusVisibilityGracePeriod": `"10s"`,
	"matching.wv.VersionDrainageStatusRefreshInterval":       `"5s"`,
}

// TemporalServerArgs is the command line of the stack's Temporal server (tools/temporal's
// temporal-server: the dev server with authorization and Web UI login) after the binary:
// dbFile is its SQLite file. docker-compose.yml runs the same, which a test checks.
func TemporalServerArgs(dbFile string) []string {
	argv := []string{
		"--db-filename", dbFile,
		"--ip", Host, "--port", strconv.Itoa(PortTemporal),
		"--internal-port", strconv.Itoa(PortTemporalInternal), "--ui-port", strconv.Itoa(PortTemporalUI),
		"--namespace", TemporalNamespace,
	}
	for _, n := range slices.Sorted(maps.Keys(SearchAttributes)) {
		argv = append(argv, "--search-attribute", n+"="+SearchAttributes[n])
	}
	for _, k := range slices.Sorted(maps.Keys(DynamicConfig)) {
		argv = append(argv, "--dynamic-config-value", k+"="+DynamicConfig[k])
	}
	return append(argv, "--log-format", "json", "--log-level", "warn",
		"--auth-jwks-url", Issuer()+"/.well-known/jwks.json", "--auth-issuer", Issuer(),
		"--auth-audience", TemporalAudience, "--auth-permissions-claim", PermissionsClaim,
		"--ui-auth-provider-url", Issuer(), "--ui-auth-client-id", ClientUI, "--ui-auth-callback-url", UIRedirectURL,
		"--ui-codec-endpoint", CodecURL(), "--ui-codec-pass-access-token")
}

// temporal runs tools/temporal's temporal-server with a SQLite file: the frontend
// authorizes every call by the bearer token's permissions claim (Hydra's JWKS, audience
// TemporalAudience), the server's own workers use the internal frontend, and the Web UI
// logs people in through Hydra. It starts once Hydra serves its keys: the UI's login
// discovers the issuer at start and exits when it cannot.
func (l *Launcher) temporal() *service {
	s := &service{name: "temporal", binary: l.path("temporal", "temporal.db"),
		ports: []int{PortTemporal, PortTemporalInternal, PortTemporalUI}, stopSig: syscall.SIGTERM}
	s.prepare = func(ctx context.Context) error {
		if err := os.MkdirAll(l.path("temporal"), 0o755); err != nil {
			return err
		}
		if err := l.waitReady(ctx, l.hydra(), nil); err != nil {
			return fmt.Errorf("waiting for hydra: %w", err)
		}
		return nil
	}
	s.command = func() ([]string, []string, *syscall.Credential, error) {
		bin, err := l.tool("temporal-server")
		if err != nil {
			return nil, nil, nil, err
		}
		sec, err := l.hydraSecrets()
		if err != nil {
			return nil, nil, nil, err
		}
		argv := append([]string{bin}, TemporalServerArgs(l.path("temporal", "temporal.db"))...)
		return argv, baseEnv("TEMPORAL_UI_AUTH_CLIENT_SECRET=" + sec.UISecret), nil, nil
	}
	s.ready = func(ctx context.Context) error {
		if err := httpGetOK(ctx, TemporalUIURL()+"/"); err != nil {
			return fmt.Errorf("web ui: %w", err)
		}
		// Without a token the frontend answers only its health check and GetSystemInfo;
		// the server registers the namespace and search attributes before it serves.
		c, err := client.DialContext(ctx, client.Options{HostPort: TemporalAddress(), Namespace: TemporalNamespace, Logger: quietLogger{}})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err
	}
	s.seed = func(ctx context.Context) error {
		l.setEnv(EnvTemporalAddress, TemporalAddress(), EnvTemporalNamespace, TemporalNamespace,
			EnvTemporalUIURL, TemporalUIURL(), EnvTaskQueue, TaskQueue,
			// Workers authenticate with the worker client's token, starters with the person's.
			EnvTemporalAuth, "client-credentials")
		return nil
	}
	return s
}

// quietLogger drops the SDK client's logs during health probes.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
