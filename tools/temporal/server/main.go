// Command temporal-server is the single-process Temporal dev server of `temporal server
// start-dev` (frontend, history, matching and worker services on SQLite, the Web UI in the
// same process), with authorization: when --auth-jwks-url is given, every call to the
// frontend needs a bearer JWT from the IdP (issuer and audience checked) whose permissions
// claim grants namespace roles, judged by package authz. The server's own system workers
// use an internal frontend on a loopback port, whose callers are system admin.
//
// Without --auth-jwks-url it behaves like start-dev (no authorization).
//
// Logs go to stderr (--log-format json|text). Once the frontend serves and the Web UI
// listens, the line "temporal-server ready" is written with the addresses; the gRPC
// health check and GetSystemInfo answer without a token, so a launcher may also poll
// those. SIGTERM or SIGINT stops the server ("temporal-server stopping", exit status 0);
// bad flags exit 2, a failure at start exits 1. Each refused call is logged at warn level
// as "authorization denied" with the API, namespace, subject and reason; a token the
// claim mapper refuses is logged by Temporal as "Authorization error".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/uuid"
	"github.com/temporalio/cli/temporalcli/devserver"
	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"

	"github.com/oidcflow/oidcflow/tools/temporal/authz"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/membership/static"
	"go.temporal.io/server/common/primitives"
	"go.temporal.io/server/temporal"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// uiScopes are the scopes the Web UI asks the IdP for.
var uiScopes = []string{"openid", "profile", "email", "offline_access"}

// startWait bounds how long the server waits at start for the IdP (JWKS and OIDC discovery).
const startWait = 60 * time.Second

func run(args []string, getenv func(string) string, stderr io.Writer) int {
	o, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "temporal-server: %v\n(see temporal-server -h)\n", err)
		return 2
	}
	logger := newSlog(stderr, o.logFormat, o.logLevel)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, o, logger); err != nil {
		logger.Error("temporal-server failed", "error", err)
		return 1
	}
	return 0
}

// ports are the ports the command line does not name, picked free at start.
type ports struct {
	frontendHTTP, history, matching, worker int
}

func serve(ctx context.Context, o *options, logger *slog.Logger) error {
	host := loopbackFor(o.ip)
	check := map[string]int{"frontend": o.port}
	if o.uiPort != 0 {
		check["Web UI"] = o.uiPort
	}
	for what, p := range check {
		if err := devserver.CheckPortFree(o.ip, p); err != nil {
			return fmt.Errorf("%s port %d: %w", what, p, err)
		}
	}
	if o.authOn() {
		if err := devserver.CheckPortFree("127.0.0.1", o.internalPort); err != nil {
			return fmt.Errorf("internal frontend port %d: %w", o.internalPort, err)
		}
	}
	var p ports
	for _, q := range []*int{&p.frontendHTTP, &p.history, &p.matching, &p.worker} {
		port, err := devserver.GetFreePort("127.0.0.1")
		if err != nil {
			return err
		}
		*q = port
	}
	if o.ip != "127.0.0.1" {
		// the frontend's HTTP port listens on --ip
		port, err := devserver.GetFreePort(o.ip)
		if err != nil {
			return err
		}
		p.frontendHTTP = port
	}

	conf, err := buildConfig(o, p)
	if err != nil {
		return err
	}
	tl := tlog{log: logger, level: o.logLevel}
	opts := []temporal.ServerOption{
		temporal.WithConfig(conf),
		temporal.ForServices(services(o)),
		temporal.WithStaticHosts(staticHosts(o, p)),
		temporal.WithLogger(tl),
	}
	var mapper *authz.ClaimMapper
	if o.authOn() {
		waitHTTP(ctx, logger, "JWKS", o.authJWKS)
		mapper, err = authz.NewClaimMapper(authz.Config{
			JWKSURL:          o.authJWKS,
			Issuer:           o.authIssuer,
			Audience:         o.authAudience,
			PermissionsClaim: o.authClaim,
			RefreshInterval:  authz.DefaultRefreshInterval,
		}, tl)
		if err != nil {
			return err
		}
		defer mapper.Close()
		opts = append(opts,
			temporal.WithAuthorizer(authz.NewAuthorizer(tl.withLevel(slog.LevelWarn))),
			temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return mapper }),
			temporal.WithAudienceGetter(authz.AudienceGetter(o.authAudience)),
		)
	} else {
		opts = append(opts,
			temporal.WithAuthorizer(authorization.NewNoopAuthorizer()),
			temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return authorization.NewNoopClaimMapper() }),
		)
	}
	opts = append(opts, temporal.WithDynamicConfigClient(dynamicConfig(o, p)))

	var ui *uiserver.Server
	if o.uiPort != 0 {
		if o.uiAuthOn() {
			if err := waitDiscovery(ctx, logger, o.uiProvider); err != nil {
				return err
			}
		} else if o.authOn() {
			logger.Warn("authorization is on and the Web UI has no login (--ui-auth-provider-url): the Web UI's calls carry no token and are refused")
		}
		ui = uiserver.NewServer(uiserveroptions.WithConfigProvider(uiConfig(o, host)))
	}

	if ctx.Err() != nil {
		return nil // stopped while waiting for the IdP
	}
	srv, err := temporal.NewServer(opts...)
	if err != nil {
		return fmt.Errorf("building the server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("starting the server: %w", err)
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			logger.Warn("stopping the server", "error", err)
		}
	}()
	if ui != nil {
		go func() {
			// Start blocks; a listen error ends the process (ui-server calls Fatal).
			_ = ui.Start()
		}()
		defer ui.Stop()
		if err := waitListening(ctx, net.JoinHostPort(host, strconv.Itoa(o.uiPort))); err != nil {
			return fmt.Errorf("Web UI: %w", err)
		}
	}

	attrs := []any{
		"frontend", net.JoinHostPort(o.ip, strconv.Itoa(o.port)),
		"namespaces", o.namespaces,
		"authorization", o.authOn(),
	}
	if o.authOn() {
		attrs = append(attrs, "internal_frontend", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.internalPort)),
			"issuer", o.authIssuer, "audience", o.authAudience)
	}
	if ui != nil {
		attrs = append(attrs, "ui", "http://"+net.JoinHostPort(o.ip, strconv.Itoa(o.uiPort)), "ui_login", o.uiAuthOn())
	}
	logger.Info("temporal-server ready", attrs...)
	<-ctx.Done()
	logger.Info("temporal-server stopping")
	return nil
}

// loopbackFor is the address to reach a listener on ip from this host.
func loopbackFor(ip string) string {
	if parsed := net.ParseIP(ip); parsed == nil || parsed.IsUnspecified() {
		return "127.0.0.1"
	}
	return ip
}

func services(o *options) []string {
	s := append([]string{}, temporal.DefaultServices...)
	if o.authOn() {
		s = append(s, string(primitives.InternalFrontendService))
	}
	return s
}

func buildConfig(o *options, p ports) (*config.Config, error) {
	frontend := net.JoinHostPort(o.ip, strconv.Itoa(o.port))
	var c config.Config
	c.Global.Membership.MaxJoinDuration = 30 * time.Second
	c.Global.Membership.BroadcastAddress = "127.0.0.1"

	c.Persistence.DefaultStore = "sqlite-default"
	c.Persistence.VisibilityStore = "sqlite-default"
	c.Persistence.NumHistoryShards = 1
	sqlConf, err := sqliteConfig(o)
	if err != nil {
		return nil, err
	}
	c.Persistence.DataStores = map[string]config.DataStore{"sqlite-default": {SQL: sqlConf}}

	c.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        "active",
		CurrentClusterName:       "active",
		ClusterInformation: map[string]cluster.ClusterInformation{
			"active": {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             frontend,
				HTTPAddress:            net.JoinHostPort(o.ip, strconv.Itoa(p.frontendHTTP)),
				ClusterID:              uuid.NewString(),
			},
		},
	}
	c.DCRedirectionPolicy.Policy = "noop"
	c.Services = map[string]config.Service{
		"frontend": {RPC: config.RPC{GRPCPort: o.port, BindOnIP: o.ip, HTTPPort: p.frontendHTTP}},
		"history":  {RPC: config.RPC{GRPCPort: p.history, BindOnIP: "127.0.0.1"}},
		"matching": {RPC: config.RPC{GRPCPort: p.matching, BindOnIP: "127.0.0.1"}},
		"worker":   {RPC: config.RPC{GRPCPort: p.worker, BindOnIP: "127.0.0.1"}},
	}
	if o.authOn() {
		// The system workers (worker service) and the history service reach the frontend
		// through the internal frontend, whose callers Temporal maps to system admin; it
		// still runs our authorizer. publicClient must stay empty with an internal frontend.
		// Internode mutual TLS keeps other local processes off it and off history/matching.
		// No HTTP port: the HTTP API would serve the same system-admin calls in plaintext.
		c.Services["internal-frontend"] = config.Service{RPC: config.RPC{GRPCPort: o.internalPort, BindOnIP: "127.0.0.1"}}
		if c.Global.TLS.Internode, err = internodeTLS(); err != nil {
			return nil, fmt.Errorf("internode TLS: %w", err)
		}
	} else {
		c.PublicClient.HostPort = net.JoinHostPort(loopbackFor(o.ip), strconv.Itoa(o.port))
	}
	c.Archival.History.State = "disabled"
	c.Archival.Visibility.State = "disabled"
	c.NamespaceDefaults.Archival.History.State = "disabled"
	c.NamespaceDefaults.Archival.Visibility.State = "disabled"
	return &c, nil
}

func staticHosts(o *options, p ports) map[primitives.ServiceName]static.Hosts {
	h := map[primitives.ServiceName]static.Hosts{
		primitives.FrontendService: static.SingleLocalHost(net.JoinHostPort(loopbackFor(o.ip), strconv.Itoa(o.port))),
		primitives.HistoryService:  static.SingleLocalHost(net.JoinHostPort("127.0.0.1", strconv.Itoa(p.history))),
		primitives.MatchingService: static.SingleLocalHost(net.JoinHostPort("127.0.0.1", strconv.Itoa(p.matching))),
		primitives.WorkerService:   static.SingleLocalHost(net.JoinHostPort("127.0.0.1", strconv.Itoa(p.worker))),
	}
	if o.authOn() {
		h[primitives.InternalFrontendService] = static.SingleLocalHost(net.JoinHostPort("127.0.0.1", strconv.Itoa(o.internalPort)))
	}
	return h
}

// waitHTTP waits up to startWait for url to answer 200, so the first key fetch of the claim
// mapper succeeds when the IdP starts together with the server. On timeout it logs and
// goes on: the keys are fetched again every authz.DefaultRefreshInterval.
func waitHTTP(ctx context.Context, logger *slog.Logger, what, url string) {
	deadline := time.Now().Add(startWait)
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			logger.Warn("the IdP's "+what+" is not reachable; tokens are refused until it is (keys are fetched again every minute)", "url", url, "error", err)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// waitDiscovery waits up to startWait for the OIDC discovery the Web UI needs: ui-server
// ends the process when its discovery fails, so it is checked here first.
func waitDiscovery(ctx context.Context, logger *slog.Logger, issuer string) error {
	deadline := time.Now().Add(startWait)
	for {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := oidc.NewProvider(dctx, issuer)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("Web UI login: OIDC discovery of %s: %w", issuer, err)
		}
		logger.Info("waiting for the IdP's OIDC discovery", "issuer", issuer, "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func waitListening(ctx context.Context, addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("not listening on %s: %w", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func uiConfig(o *options, host string) *uiconfig.Config {
	c := &uiconfig.Config{
		Host: devserver.MaybeEscapeIPv6(o.ip),
		Port: o.uiPort,
		// The public frontend: every Web UI call carries the person's token and is
		// authorized like any other call.
		TemporalGRPCAddress: net.JoinHostPort(host, strconv.Itoa(o.port)),
		EnableUI:            true,
		DefaultNamespace:    o.namespaces[len(o.namespaces)-1],
		Codec:               uiconfig.Codec{Endpoint: o.uiCodec, PassAccessToken: o.uiCodecPassToken},
		CORS:                uiconfig.CORS{CookieInsecure: true},
		HideLogs:            true,
	}
	if o.uiAuthOn() {
		c.Auth = uiconfig.Auth{Enabled: true, Providers: []uiconfig.AuthProvider{{
			Label:        "sso",
			Type:         "oidc",
			ProviderURL:  o.uiProvider,
			ClientID:     o.uiClientID,
			ClientSecret: o.uiClientSecret,
			Scopes:       uiScopes,
			CallbackURL:  o.uiCallback,
		}}}
	}
	return c
}
