// Command replay-check is the replay gate (`make replay-check`): it replays the saved
// histories of every testdata folder with an index (or the folders given as arguments) and,
// with an address, every running run of a live namespace's pool task queue, against the
// workflow code it was built from, with the real worker interceptors and nothing reachable.
// Run it before deploying a worker: a run it reports would fail its next workflow task on the
// new code. It exits 1 when a history does not replay, 2 when it could not check.
//
// Usage:
//
//	replay-check [flags] [folder ...]
//
// The live namespace is TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE (flags -address, -namespace).
// With -api-key-file the file's content is sent as a bearer API key (with TLS, except on a
// loopback address); mTLS client certificates are not supported.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/conformance"
	"github.com/oidcflow/oidcflow/internal/replay"
	"github.com/oidcflow/oidcflow/workflows"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay-check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	address := fs.String("address", os.Getenv("TEMPORAL_ADDRESS"),
		"Temporal frontend host:port whose running runs to replay too (default $TEMPORAL_ADDRESS; empty: saved histories only)")
	namespace := fs.String("namespace", cmp.Or(os.Getenv("TEMPORAL_NAMESPACE"), "default"), "namespace of the live runs (default $TEMPORAL_NAMESPACE)")
	queue := fs.String("task-queue", cmp.Or(os.Getenv("OIDCFLOW_TASK_QUEUE"), workflows.TaskQueue),
		`the pool's task queue: only its runs are replayed (default $OIDCFLOW_TASK_QUEUE); "" for every run of the namespace`)
	filter := fs.String("query", "", `more visibility filter for the live runs, e.g. 'WorkflowType="KeepAlive"'`)
	saved := fs.Bool("saved", true, "replay saved histories (the folders given, or every testdata folder with an index under the module root)")
	keyFile := fs.String("api-key-file", "", "file holding a Temporal API key to send as bearer token (TLS then, but on loopback)")
	verbose := fs.Bool("v", false, "list every history replayed")
	codecEndpoint := fs.String("codec-endpoint", os.Getenv("OIDCFLOW_CODEC_ENDPOINT"),
		"the pool's codec server, to decode the live runs' encrypted payloads with the API key's token (default $OIDCFLOW_CODEC_ENDPOINT)")
	codecCA := fs.String("codec-ca-file", os.Getenv("OIDCFLOW_CODEC_CA_FILE"), "CA file of the codec server's certificate (default $OIDCFLOW_CODEC_CA_FILE)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: replay-check [flags] [folder of saved histories ...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}

	wfs := replay.Shipped()
	// The conformance workflows exist for tests; their saved histories are part of the gate.
	wfs[conformance.WorkflowName] = conformance.Workflow
	wfs[conformance.ChildName] = conformance.Child
	wfs[conformance.PingerName] = conformance.Pinger
	opts := replay.Options{Workflows: wfs}
	if *address != "" && *keyFile != "" && *codecEndpoint != "" {
		dc, err := codecConverter(*keyFile, *namespace, *codecEndpoint, *codecCA)
		if err != nil {
			fmt.Fprintln(stderr, "replay-check:", err)
			return 2
		}
		opts.DataConverter = dc
	}
	g, err := replay.New(opts)
	if err != nil {
		fmt.Fprintln(stderr, "replay-check:", err)
		return 2
	}
	c := &checker{gate: g, out: stdout, verbose: *verbose}

	if *saved {
		dirs := fs.Args()
		if len(dirs) == 0 {
			root, err := moduleRoot()
			if err != nil {
				fmt.Fprintln(stderr, "replay-check:", err)
				return 2
			}
			if dirs, err = replay.FindDirs(root); err != nil {
				fmt.Fprintln(stderr, "replay-check:", err)
				return 2
			}
			if wd, err := os.Getwd(); err == nil {
				for i, d := range dirs {
					if rel, err := filepath.Rel(wd, d); err == nil {
						dirs[i] = rel
					}
				}
			}
		}
		for _, dir := range dirs {
			hs, err := replay.LoadDir(dir)
			if err != nil {
				fmt.Fprintln(stderr, "replay-check:", err)
				return 2
			}
			for _, h := range hs {
				c.check(h)
			}
			c.saved += len(hs)
		}
	}
	if *address != "" {
		if err := c.live(ctx, *address, *namespace, *queue, *filter, *keyFile); err != nil {
			fmt.Fprintln(stderr, "replay-check:", err)
			return 2
		}
	}
	fmt.Fprintf(stdout, "replay-check: %d saved histories and %d running runs replayed, %d failed\n", c.saved, c.running, c.failed)
	if c.failed > 0 {
		return 1
	}
	return 0
}

// checker replays histories and counts.
type checker struct {
	gate                   *replay.Gate
	out                    io.Writer
	verbose                bool
	saved, running, failed int
}

func (c *checker) check(h replay.History) {
	err := c.gate.Replay(h)
	switch {
	case err != nil:
		c.failed++
		fmt.Fprintln(c.out, "FAIL", err)
	case c.verbose:
		fmt.Fprintf(c.out, "ok   %s %s %s (%s)\n", h.WorkflowType(), h.WorkflowID, h.State, h.Source)
	}
}

// live replays the running runs of queue (every queue for "") in namespace at address.
func (c *checker) live(ctx context.Context, address, namespace, queue, filter, keyFile string) error {
	opts := client.Options{HostPort: address, Namespace: namespace}
	if keyFile != "" {
		key, err := os.ReadFile(keyFile)
		if err != nil {
			return fmt.Errorf("-api-key-file: %w", err)
		}
		opts.Credentials = client.NewAPIKeyStaticCredentials(strings.TrimSpace(string(key)))
		if host, _, _ := net.SplitHostPort(address); host == "localhost" || net.ParseIP(host).IsLoopback() {
			opts.ConnectionOptions.TLSDisabled = true
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	tc, err := client.DialContext(dctx, opts)
	cancel()
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s: %w", address, err)
	}
	defer tc.Close()
	if queue != "" {
		q := "TaskQueue=" + strconv.Quote(queue)
		if filter != "" {
			q += " AND (" + filter + ")"
		}
		filter = q
	}
	for h, err := range replay.OpenRuns(ctx, tc, namespace, filter) {
		if err != nil {
			return err
		}
		c.check(h)
		c.running++
	}
	return nil
}

// codecConverter decodes payloads through the pool's codec server, as the holder of the
// API key in keyFile (a reader of namespace at least).
func codecConverter(keyFile, namespace, endpoint, caFile string) (converter.DataConverter, error) {
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("-api-key-file: %w", err)
	}
	codec, err := interceptors.NewRemoteCodec(interceptors.RemoteCodecOptions{Endpoint: endpoint, CAFile: caFile, Namespace: namespace,
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: strings.TrimSpace(string(key))})})
	if err != nil {
		return nil, err
	}
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), codec), nil
}

// moduleRoot is the folder holding go.mod at or above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory; name the folders of saved histories, or -saved=false")
		}
		dir = parent
	}
}
