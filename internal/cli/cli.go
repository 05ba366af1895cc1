// Package cli is the `starter` command: login and logout (OIDC authorization code + PKCE with
// a loopback redirect, or device authorization), a self-refreshing token cache, and the
// access-request commands that start and decide AccessRequest workflows with the caller's
// identity sealed onto every call. starter/main.go only calls Main.
//
// Output is for people by default (aligned, concise) and for scripts with --json (the shapes
// are the exported *JSON types of this package; field names are stable). Errors go to stderr
// and say what to do; with --json they are a JSON object {"error": ..., "code": ...}.
// Exit codes: 0 success, 1 error, 2 usage. No token is ever printed, in any mode.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/login"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// Error codes of the --json error object.
const (
	CodeNotLoggedIn    = "not_logged_in"
	CodeSessionExpired = "session_expired"
	CodeIdPUnreachable = "idp_unreachable"
	CodeForbidden      = "forbidden"
	CodeNotFound       = "not_found"
	// CodeRequestChanged: approve or deny found another run or another request than the one
	// the approver saw; nothing was decided.
	CodeRequestChanged = "request_changed"
	// CodeNewerSessionFile: the session file was written by a newer starter, in a format this
	// one does not read; nothing of it was used, refreshed, revoked or changed.
	CodeNewerSessionFile = "session_file_newer"
	CodeTemporal         = "temporal_unreachable"
	CodeUsage            = "usage"
	CodeError            = "error"
)

// ErrorJSON is what stderr carries on failure with --json.
type ErrorJSON struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// Version is set at build time (-ldflags "-X github.com/oidcflow/oidcflow/internal/cli.Version=v1.2.3");
// default: the module version from the build info.
var Version = ""

const usageText = `starter: start and decide identity-carrying oidcflow workflows.

Usage: starter <command> [flags] [args]

Session:
  login            log in (authorization code + PKCE in a browser; --device for device authorization)
  logout           revoke the refresh token at the identity provider and delete the local session
  whoami           show the verified claims of the session and the policies they satisfy

Access requests:
  request-access   ask for time-bound database access (--resource --role --duration --reason [--wait])
  approve <id>     show a pending request, then approve exactly that one [--comment] [--run --digest]
  deny <id>        show a pending request, then deny exactly that one --comment [--run --digest]
  revoke <id>      withdraw a pending request, or revoke a granted one early [--reason]
  status <id>      show a request's state [--audit]
  list             list requests [--requester me|<sub>] [--state pending|granted|...]

Other:
  version          print the version

Every command takes --json for machine-readable output. Configuration comes from environment
variables (OIDCFLOW_ISSUER, TEMPORAL_ADDRESS, ...; see the README), or the env file named by
OIDCFLOW_ENV_FILE. Run 'starter <command> -h' for a command's flags.
`

// Options are what Main needs besides the arguments. The zero value runs the starter as a
// person uses it from a terminal.
type Options struct {
	// Stdout and Stderr receive the output and the errors. Default os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
	// Env supplies configuration. Default: the process environment (and the env file named
	// by OIDCFLOW_ENV_FILE).
	Env *config.Env
	// Browser stands in for the person at the browser during `starter login`: given the
	// authorization URL, it signs in at the identity provider and follows the redirects back
	// to the starter's loopback listener, and returns once it has (or failed: the login
	// fails with its error). Default nil: the person opens the URL the starter prints (with
	// --open the starter starts the platform's browser for them). The demo and tests set it
	// to the dev stack's persona picker; the starter itself knows no dev identity provider.
	Browser func(ctx context.Context, authURL string) error
}

// Main runs the starter with args (without the program name) and returns the exit code.
func Main(ctx context.Context, args []string, opts Options) int {
	r := &runner{stdout: opts.Stdout, stderr: opts.Stderr, env: opts.Env, browser: opts.Browser}
	if r.stdout == nil {
		r.stdout = os.Stdout
	}
	if r.stderr == nil {
		r.stderr = os.Stderr
	}
	return r.main(ctx, args)
}

// runner holds one invocation's state and its replaceable dependencies.
type runner struct {
	stdout, stderr io.Writer
	env            *config.Env
	json           bool

	// Dependencies; zero values take production defaults (see defaults).
	httpClient  *http.Client
	now         func() time.Time
	openBrowser func(url string) error
	browser     func(ctx context.Context, authURL string) error // Options.Browser
	dial        func(ctx context.Context, r *runner, ts oauth2.TokenSource) (temporalClient, error)
	// pollEvery is the --wait poll interval. Default 1s.
	pollEvery time.Duration
}

func (r *runner) defaults() error {
	if r.env == nil {
		e, err := config.FromEnvironment()
		if err != nil {
			return fmt.Errorf("%w; the dev stack writes its env file with `make up`", err)
		}
		r.env = e
	}
	if r.httpClient == nil {
		r.httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.openBrowser == nil {
		r.openBrowser = openBrowser
	}
	if r.dial == nil {
		r.dial = dialTemporal
	}
	if r.pollEvery <= 0 {
		r.pollEvery = time.Second
	}
	return nil
}

type command struct {
	name  string
	short string
	run   func(r *runner, ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"login", "log in", (*runner).login},
		{"logout", "log out", (*runner).logout},
		{"whoami", "show the verified claims", (*runner).whoami},
		{"request-access", "ask for access", (*runner).requestAccess},
		{"approve", "approve a request", (*runner).approve},
		{"deny", "deny a request", (*runner).deny},
		{"revoke", "revoke a request", (*runner).revoke},
		{"reconsent", "renew the consent of a run parked for re-authentication", (*runner).reconsent},
		{"status", "show a request", (*runner).status},
		{"list", "list requests", (*runner).list},
		{"version", "print the version", (*runner).version},
	}
}

func (r *runner) main(ctx context.Context, args []string) int {
	// Global flags before the command: --json, -h.
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "--json", "-json":
			r.json = true
		case "-h", "-help", "--help":
			fmt.Fprint(r.stdout, usageText)
			return ExitOK
		default:
			return r.fail(usageErrorf("unknown flag %s before the command", args[0]))
		}
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprint(r.stderr, usageText)
		return ExitUsage
	}
	name, rest := args[0], args[1:]
	if name == "help" {
		fmt.Fprint(r.stdout, usageText)
		return ExitOK
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		if err := r.defaults(); err != nil {
			return r.fail(err)
		}
		if err := c.run(r, ctx, rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return ExitOK
			}
			return r.fail(err)
		}
		return ExitOK
	}
	return r.fail(usageErrorf("unknown command %q; run `starter help`", name))
}

// fail prints err for people (or as ErrorJSON) and returns its exit code.
func (r *runner) fail(err error) int {
	code, msg, exit := r.classify(err)
	if r.json {
		b, _ := json.Marshal(ErrorJSON{Error: msg, Code: code})
		fmt.Fprintf(r.stderr, "%s\n", b)
	} else {
		fmt.Fprintf(r.stderr, "starter: %s\n", msg)
	}
	return exit
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// flags returns a FlagSet for a command that writes its usage to stderr and knows --json.
func (r *runner) flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(r.stderr)
	fs.BoolVar(&r.json, "json", r.json, "machine-readable JSON output")
	fs.Usage = func() {
		fmt.Fprintf(r.stderr, "Usage: starter %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags and positional arguments in any order (`approve ID --comment x` and
// `approve --comment x ID`), returning the positional ones; want is their exact count.
func parse(fs *flag.FlagSet, args []string, want int, names string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{msg: err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != want {
		if want == 0 {
			return nil, usageErrorf("%s takes no arguments (got %q)", fs.Name(), pos)
		}
		return nil, usageErrorf("%s needs %s", fs.Name(), names)
	}
	return pos, nil
}

// emit prints v as JSON with --json, else calls human.
func (r *runner) emit(v any, human func(w io.Writer)) error {
	if r.json {
		enc := json.NewEncoder(r.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(r.stdout, 0, 0, 2, ' ', 0)
	human(tw)
	return tw.Flush()
}

// VersionJSON is the --json output of `starter version`.
type VersionJSON struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	GoVersion string `json:"go_version"`
}

func (r *runner) version(ctx context.Context, args []string) error {
	fs := r.flags("version", "")
	if _, err := parse(fs, args, 0, ""); err != nil {
		return err
	}
	v := VersionJSON{Version: Version}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v.GoVersion = bi.GoVersion
		if v.Version == "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v.Revision = s.Value
			}
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	return r.emit(v, func(w io.Writer) {
		fmt.Fprintf(w, "starter %s", v.Version)
		if v.Revision != "" {
			fmt.Fprintf(w, " (%.12s)", v.Revision)
		}
		fmt.Fprintf(w, " %s\n", v.GoVersion)
	})
}

// cache returns the token cache at OIDCFLOW_TOKEN_CACHE, default the user's config folder.
func (r *runner) cache() (*login.Cache, error) {
	return login.NewCache(login.CacheOptions{Path: r.env.String("OIDCFLOW_TOKEN_CACHE")})
}
