package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
)

// secretEnv carries the Web UI's OIDC client secret; it is never a flag, so it stays out of
// the process list.
const secretEnv = "TEMPORAL_UI_AUTH_CLIENT_SECRET"

// options are the parsed and checked command line.
type options struct {
	dbFile       string
	ip           string
	port         int
	internalPort int
	uiPort       int
	namespaces   []string
	searchAttrs  map[string]enumspb.IndexedValueType
	dynConfig    map[string]any
	logFormat    string
	logLevel     slog.Level

	authJWKS     string
	authIssuer   string
	authAudience string
	authClaim    string

	uiProvider       string
	uiClientID       string
	uiClientSecret   string
	uiCallback       string
	uiCodec          string
	uiCodecPassToken bool
}

func (o *options) authOn() bool   { return o.authJWKS != "" }
func (o *options) uiAuthOn() bool { return o.uiProvider != "" }

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// errHelp asks for the usage text and exit status 0.
var errHelp = flag.ErrHelp

// parseFlags parses and checks args; getenv supplies the UI client secret. Any error is a
// usage error (exit status 2), except errHelp.
func parseFlags(args []string, getenv func(string) string, usage io.Writer) (*options, error) {
	o := &options{}
	var namespaces, searchAttrs, dynConfig multi
	var logLevel string
	fs := flag.NewFlagSet("temporal-server", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&o.dbFile, "db-filename", "", "SQLite file (required; created with its schema when missing)")
	fs.StringVar(&o.ip, "ip", "127.0.0.1", "address of the frontend and the Web UI")
	fs.IntVar(&o.port, "port", 7233, "frontend gRPC port")
	fs.IntVar(&o.internalPort, "internal-port", 7236, "internal-frontend gRPC port on 127.0.0.1, for the server's own system workers (used when authorization is on)")
	fs.IntVar(&o.uiPort, "ui-port", 8233, "Web UI port; 0 = no Web UI")
	fs.Var(&namespaces, "namespace", "namespace registered at start with 24h retention (repeatable; \"default\" is always registered)")
	fs.Var(&searchAttrs, "search-attribute", "Name=Type search attribute registered in every namespace created at start (repeatable)")
	fs.Var(&dynConfig, "dynamic-config-value", "key=JSON dynamic config value (repeatable)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format on stderr: json or text")
	fs.StringVar(&logLevel, "log-level", "warn", "level of the Temporal services' logs: debug, info, warn or error (start and stop lines are always written)")
	fs.StringVar(&o.authJWKS, "auth-jwks-url", "", "the IdP's JWKS URL; turns authorization on")
	fs.StringVar(&o.authIssuer, "auth-issuer", "", "the issuer every token must carry in \"iss\" (required with --auth-jwks-url)")
	fs.StringVar(&o.authAudience, "auth-audience", "", "the audience every token must carry in \"aud\" (required with --auth-jwks-url)")
	fs.StringVar(&o.authClaim, "auth-permissions-claim", "permissions", "the JWT claim with namespace:role items (roles read, write, worker, admin)")
	fs.StringVar(&o.uiProvider, "ui-auth-provider-url", "", "the OIDC issuer of the Web UI login; turns the login on (client secret from $"+secretEnv+")")
	fs.StringVar(&o.uiClientID, "ui-auth-client-id", "", "the Web UI's OIDC client id")
	fs.StringVar(&o.uiCallback, "ui-auth-callback-url", "", "the Web UI's OIDC redirect URL, e.g. http://127.0.0.1:8233/auth/sso/callback")
	fs.StringVar(&o.uiCodec, "ui-codec-endpoint", "", "the remote codec the Web UI calls")
	fs.BoolVar(&o.uiCodecPassToken, "ui-codec-pass-access-token", false, "the Web UI sends the user's access token to the codec (needs an https:// codec endpoint)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if o.dbFile == "" {
		return nil, errors.New("--db-filename is required")
	}
	if o.ip == "localhost" {
		o.ip = "127.0.0.1"
	}
	if net.ParseIP(o.ip) == nil {
		return nil, fmt.Errorf("--ip %q is not an IP address", o.ip)
	}
	for name, p := range map[string]int{"port": o.port, "internal-port": o.internalPort} {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("--%s %d is not a port (1-65535)", name, p)
		}
	}
	if o.uiPort < 0 || o.uiPort > 65535 {
		return nil, fmt.Errorf("--ui-port %d is not a port (1-65535, or 0 for no Web UI)", o.uiPort)
	}
	if o.uiPort == o.port {
		return nil, fmt.Errorf("--ui-port and --port are both %d", o.port)
	}

	o.namespaces = []string{"default"}
	for _, ns := range namespaces {
		if strings.TrimSpace(ns) != ns || ns == "" || strings.ContainsAny(ns, " \t\n/") {
			return nil, fmt.Errorf("--namespace %q is not a namespace name", ns)
		}
		if ns == "temporal-system" {
			return nil, errors.New("--namespace temporal-system is the server's own namespace")
		}
		if !contains(o.namespaces, ns) {
			o.namespaces = append(o.namespaces, ns)
		}
	}

	o.searchAttrs = map[string]enumspb.IndexedValueType{}
	for _, sa := range searchAttrs {
		name, typ, ok := strings.Cut(sa, "=")
		if !ok || name == "" || typ == "" {
			return nil, fmt.Errorf("--search-attribute %q is not Name=Type", sa)
		}
		var t enumspb.IndexedValueType
		for shorthand, v := range enumspb.IndexedValueType_shorthandValue {
			if strings.EqualFold(typ, shorthand) {
				t = enumspb.IndexedValueType(v)
			}
		}
		if t == enumspb.INDEXED_VALUE_TYPE_UNSPECIFIED {
			return nil, fmt.Errorf("--search-attribute %q: unknown type %q (Text, Keyword, Int, Double, Bool, Datetime, KeywordList)", sa, typ)
		}
		o.searchAttrs[name] = t
	}

	o.dynConfig = map[string]any{}
	for _, kv := range dynConfig {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--dynamic-config-value %q is not key=JSON", kv)
		}
		val, err := dynValue(v)
		if err != nil {
			return nil, fmt.Errorf("--dynamic-config-value %q: %v", kv, err)
		}
		o.dynConfig[k] = val
	}

	switch o.logFormat {
	case "json", "text":
	default:
		return nil, fmt.Errorf("--log-format %q: want json or text", o.logFormat)
	}
	if err := o.logLevel.UnmarshalText([]byte(logLevel)); err != nil || !contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(logLevel)) {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)
	}

	if o.authOn() {
		if err := checkURL("auth-jwks-url", o.authJWKS, false); err != nil {
			return nil, err
		}
		if o.authIssuer == "" {
			return nil, errors.New("--auth-issuer is required with --auth-jwks-url")
		}
		if o.authAudience == "" {
			return nil, errors.New("--auth-audience is required with --auth-jwks-url")
		}
		if o.authClaim == "" {
			return nil, errors.New("--auth-permissions-claim is empty")
		}
		if o.internalPort == o.port || o.internalPort == o.uiPort {
			return nil, fmt.Errorf("--internal-port %d is also the frontend or Web UI port", o.internalPort)
		}
	} else {
		for _, f := range []string{"auth-issuer", "auth-audience", "auth-permissions-claim"} {
			if set[f] {
				return nil, fmt.Errorf("--%s needs --auth-jwks-url (which turns authorization on)", f)
			}
		}
	}

	o.uiClientSecret = getenv(secretEnv)
	uiFlags := []string{"ui-auth-provider-url", "ui-auth-client-id", "ui-auth-callback-url", "ui-codec-endpoint", "ui-codec-pass-access-token"}
	if o.uiPort == 0 {
		for _, f := range uiFlags {
			if set[f] {
				return nil, fmt.Errorf("--%s with --ui-port 0 (no Web UI)", f)
			}
		}
	}
	if o.uiAuthOn() {
		if err := checkURL("ui-auth-provider-url", o.uiProvider, false); err != nil {
			return nil, err
		}
		if o.uiClientID == "" {
			return nil, errors.New("--ui-auth-client-id is required with --ui-auth-provider-url")
		}
		if o.uiCallback == "" {
			return nil, errors.New("--ui-auth-callback-url is required with --ui-auth-provider-url")
		}
		if err := checkURL("ui-auth-callback-url", o.uiCallback, false); err != nil {
			return nil, err
		}
	} else {
		for _, f := range []string{"ui-auth-client-id", "ui-auth-callback-url"} {
			if set[f] {
				return nil, fmt.Errorf("--%s needs --ui-auth-provider-url (which turns the Web UI login on)", f)
			}
		}
	}
	if o.uiCodec != "" {
		if err := checkURL("ui-codec-endpoint", o.uiCodec, false); err != nil {
			return nil, err
		}
	}
	if o.uiCodecPassToken {
		if err := checkURL("ui-codec-endpoint", o.uiCodec, true); err != nil {
			return nil, fmt.Errorf("--ui-codec-pass-access-token: the Web UI sends the token only to an https:// codec endpoint: %v", err)
		}
	}
	return o, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func checkURL(flagName, raw string, httpsOnly bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && (httpsOnly || u.Scheme != "http")) {
		want := "an http:// or https:// URL"
		if httpsOnly {
			want = "an https:// URL"
		}
		return fmt.Errorf("--%s %q is not %s", flagName, raw, want)
	}
	return nil
}

// dynValue decodes a dynamic config value as start-dev does: JSON, with whole numbers as
// int (the server's dynamic config wants int, not float64 nor int64).
func dynValue(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %v", err)
	}
	if dec.More() {
		return nil, errors.New("invalid JSON: more than one value")
	}
	return numbersToInt(v), nil
}

func numbersToInt(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = numbersToInt(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = numbersToInt(x[k])
		}
	}
	return v
}
