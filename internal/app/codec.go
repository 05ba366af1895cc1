package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/oidcflow/oidcflow/codecserver"
	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/pool"
	"github.com/oidcflow/oidcflow/tokenstore/vaultauth"
)

// CodecServerOptions configure NewCodecServer.
type CodecServerOptions struct {
	// Env is the configuration (config.Vars): the pool's Vault, issuer and namespace
	// settings, and the OIDCFLOW_CODEC_* ones. Required.
	Env *config.Env
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// CodecServer is the worker's codec-server command: the pool's payload codec
// (OIDCFLOW_PAYLOAD_TRANSIT_KEY) served over HTTPS to the Temporal Web UI and to starters
// (package codecserver), logged in to Vault as the pool is.
type CodecServer struct {
	// Handler serves POST /encode and /decode (codecserver) and GET /healthz.
	Handler http.Handler
	// Listen, CertFile and KeyFile are OIDCFLOW_CODEC_LISTEN, OIDCFLOW_CODEC_TLS_CERT and
	// OIDCFLOW_CODEC_TLS_KEY.
	Listen, CertFile, KeyFile string

	vault  *vaultauth.Session
	logger *slog.Logger
}

// CodecSettings are the codec server's own settings, read from env.
type CodecSettings struct {
	Listen, CertFile, KeyFile string
	Origins                   []string
	Audience                  string
}

// ReadCodecSettings reads OIDCFLOW_CODEC_LISTEN, OIDCFLOW_CODEC_TLS_CERT,
// OIDCFLOW_CODEC_TLS_KEY, OIDCFLOW_CODEC_ORIGINS (spaces or commas between origins) and
// OIDCFLOW_TEMPORAL_AUDIENCE.
func ReadCodecSettings(env *config.Env) (CodecSettings, error) {
	s := CodecSettings{Listen: env.String("OIDCFLOW_CODEC_LISTEN"), Audience: env.String("OIDCFLOW_TEMPORAL_AUDIENCE")}
	var err error
	if s.CertFile, err = env.Required("OIDCFLOW_CODEC_TLS_CERT"); err != nil {
		return s, err
	}
	if s.KeyFile, err = env.Required("OIDCFLOW_CODEC_TLS_KEY"); err != nil {
		return s, err
	}
	s.Origins = strings.FieldsFunc(env.String("OIDCFLOW_CODEC_ORIGINS"), func(r rune) bool { return r == ',' || r == ' ' })
	if s.Audience == "" {
		return s, errors.New("config: OIDCFLOW_TEMPORAL_AUDIENCE is empty; set the audience Temporal's access tokens carry")
	}
	return s, nil
}

// NewCodecServer logs in to Vault as the pool does (OIDCFLOW_VAULT_AUTH: AppRole, token or
// Kubernetes), builds the payload codec, the access token verifier (OIDCFLOW_ISSUER, the
// claim mapping, OIDCFLOW_TEMPORAL_AUDIENCE) and the handler for TEMPORAL_NAMESPACE. It does
// not listen; Run does.
func NewCodecServer(ctx context.Context, opts CodecServerOptions) (*CodecServer, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	settings, err := ReadCodecSettings(opts.Env)
	if err != nil {
		return nil, err
	}
	cfg, err := pool.FromLookup(opts.Env.Lookup)
	if err != nil {
		return nil, err
	}
	cfg.Logger = logger
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	vc, session, err := cfg.LoginVault(ctx)
	if err != nil {
		return nil, err
	}
	codec, err := cfg.NewPayloadCodec(vc)
	if err != nil {
		return nil, err
	}
	verifier, err := cfg.NewAccessTokenVerifier(ctx, settings.Audience)
	if err != nil {
		return nil, err
	}
	handler, err := codecserver.New(codecserver.Options{
		Codec: codec, Verifier: verifier, Namespaces: []string{opts.Env.String("TEMPORAL_NAMESPACE")},
		Origins: settings.Origins, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/", handler)
	return &CodecServer{
		Handler: mux, Listen: settings.Listen, CertFile: settings.CertFile, KeyFile: settings.KeyFile,
		vault: session, logger: logger,
	}, nil
}

// Run serves HTTPS on Listen until ctx is done, keeping the Vault token alive, then shuts
// down within 10 seconds.
func (s *CodecServer) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.Listen)
	if err != nil {
		return fmt.Errorf("listen on OIDCFLOW_CODEC_LISTEN=%s: %w", s.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on ln.
func (s *CodecServer) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn)}
	vctx, stopVault := context.WithCancel(context.Background())
	vaultDone := make(chan struct{})
	go func() {
		defer close(vaultDone)
		s.vault.Run(vctx)
	}()
	defer func() {
		stopVault()
		<-vaultDone
	}()
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, s.CertFile, s.KeyFile) }()
	s.logger.Info("codec server listening", "addr", ln.Addr().String())
	select {
	case err := <-served:
		return fmt.Errorf("codec server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
