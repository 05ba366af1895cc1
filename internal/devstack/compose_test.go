package devstack

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/jackc/pgx/v5"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/config"
)

// loadCompose loads docker-compose.yml with compose-go, the loader `docker compose` uses:
// anchors, merge keys, interpolation ($$ is a literal $), validation against the compose
// schema and normalisation, so that the tests see what Docker would run.
func loadCompose(t *testing.T) (*types.Project, string) {
	t.Helper()
	root, err := FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithEnv([]string{}), cli.WithInterpolation(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p, root
}

func svcOf(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("service %s missing", name)
	}
	return s
}

// envOf returns the value of k in s's environment ("" if unset).
func envOf(s types.ServiceConfig, k string) string {
	if v := s.Environment[k]; v != nil {
		return *v
	}
	return ""
}

// mountOf returns s's mount at target.
func mountOf(s types.ServiceConfig, target string) (types.ServiceVolumeConfig, bool) {
	for _, v := range s.Volumes {
		if v.Target == target {
			return v, true
		}
	}
	return types.ServiceVolumeConfig{}, false
}

// mountersOf lists the services that mount volume (sorted).
func mountersOf(p *types.Project, volume string) []string {
	var out []string
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume && v.Source == volume {
				out = append(out, name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// uidOf is the uid s runs as: its user, else root (the images we use without a user start
// as root: postgres's and Vault's entrypoints drop privileges themselves).
func uidOf(t *testing.T, s types.ServiceConfig) int {
	t.Helper()
	if s.User == "" {
		return 0
	}
	u, _, _ := strings.Cut(s.User, ":")
	uid, err := strconv.Atoi(u)
	if err != nil {
		t.Fatalf("%s: user %q is not numeric; the init step gives files to numeric uids", s.Name, s.User)
	}
	return uid
}

// flagValue returns the argument after name in args ("" if absent).
func flagValue(args []string, name string) string {
	if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

func TestComposeAgreesWithDevStack(t *testing.T) {
	p, root := loadCompose(t)
	port := strconv.Itoa
	want := []string{"init", "postgres", "temporal", "codec", "vault", "hydra-migrate", "hydra", "idp", "seed", "worker"}
	if got := slices.Sorted(maps.Keys(p.Services)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("services %v, want %v", got, want)
	}
	for name, s := range p.Services {
		// Host networking on loopback: same addresses as the dev stack, nothing published.
		if s.NetworkMode != "host" || len(s.Ports) > 0 {
			t.Errorf("%s: network_mode %q, ports %v; want host networking and no published ports", name, s.NetworkMode, s.Ports)
		}
	}

	images := map[string]string{
		"postgres": "postgres:15", "vault": "hashicorp/vault:1.21.0", "hydra": "oryd/hydra:v2.3.0", "hydra-migrate": "oryd/hydra:v2.3.0",
		"init": "oidcflow/devstack:dev", "idp": "oidcflow/devstack:dev", "seed": "oidcflow/devstack:dev",
		"worker": "oidcflow/worker:dev", "codec": "oidcflow/worker:dev", "temporal": "oidcflow/temporal:dev",
	}
	targets := map[string]string{"init": "devstack", "idp": "devstack", "seed": "devstack", "worker": "worker", "codec": "worker", "temporal": "temporal"}
	for name, img := range images {
		s := svcOf(t, p, name)
		if s.Image != img {
			t.Errorf("%s image = %q, want %q", name, s.Image, img)
		}
		target, built := targets[name]
		switch {
		case !built && s.Build != nil:
			t.Errorf("%s: built, want the official image", name)
		case built && (s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" || s.Build.Target != target || s.Build.Context != root):
			t.Errorf("%s build = %+v, want deploy/Dockerfile target %s in the clone", name, s.Build, target)
		}
	}

	pg := svcOf(t, p, "postgres")
	if flagValue(pg.Command, "-p") != port(PortPostgres) || envOf(pg, "PGPORT") != port(PortPostgres) ||
		!slices.Contains(pg.Command, "listen_addresses="+Host) || envOf(pg, "POSTGRES_USER") != PostgresUser {
		t.Errorf("postgres: command %v env %v; want port %d on %s, user %s", pg.Command, pg.Environment, PortPostgres, Host, PostgresUser)
	}
	initSQL, err := os.ReadFile(filepath.Join(root, "deploy", "postgres-init.sql"))
	if err != nil || !strings.Contains(string(initSQL), "CREATE DATABASE "+PostgresDatabase+";") ||
		!strings.Contains(string(initSQL), "CREATE DATABASE "+HydraDatabase+";") {
		t.Errorf("deploy/postgres-init.sql does not create databases %s and %s (%v)", PostgresDatabase, HydraDatabase, err)
	}

	hcl, err := os.ReadFile(filepath.Join(root, "deploy", "vault.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stripComments(string(hcl)), stripComments(VaultConfig("/vault/file")); got != want {
		t.Errorf("deploy/vault.hcl differs from VaultConfig:\n%s\nwant:\n%s", got, want)
	}
	if m, ok := mountOf(svcOf(t, p, "vault"), "/vault/file"); !ok || m.Type != types.VolumeTypeVolume {
		t.Errorf("vault: no volume at /vault/file, the storage path of deploy/vault.hcl")
	}

	for _, name := range []string{"hydra", "hydra-migrate"} {
		if got := flagValue(svcOf(t, p, name).Command, "--config"); got != ComposeServiceDir+"/hydra.yaml" {
			t.Errorf("%s --config = %q, want the file compose-init writes", name, got)
		}
	}
	idp := svcOf(t, p, "idp")
	if flagValue(idp.Command, "--addr") != hostPort(PortIDP) || flagValue(idp.Command, "--hydra-admin") != HydraAdminURL() ||
		flagValue(idp.Command, "--personas") != ComposeServiceDir+"/personas.json" || flagValue(idp.Command, "--hook-key-file") != ComposeServiceDir+"/hook-key" {
		t.Errorf("idp command = %v", idp.Command)
	}
	for _, name := range []string{"init", "seed"} {
		if s := svcOf(t, p, name); flagValue(s.Command, "--state") != "/stack" {
			t.Errorf("%s command = %v, want --state /stack", name, s.Command)
		}
	}
	for _, name := range []string{"worker", "codec"} {
		if got := envOf(svcOf(t, p, name), "OIDCFLOW_ENV_FILE"); got != ComposeServiceDir+"/env" {
			t.Errorf("%s OIDCFLOW_ENV_FILE = %q, want the env file the seed step writes for it", name, got)
		}
	}
	// Ordering: what a service needs has started, or finished for one-off steps.
	needs := map[string]map[string]string{
		"postgres": {"init": types.ServiceConditionCompletedSuccessfully},
		"temporal": {"init": types.ServiceConditionCompletedSuccessfully, "hydra": types.ServiceConditionStarted},
		"idp":      {"init": types.ServiceConditionCompletedSuccessfully},
		"hydra":    {"hydra-migrate": types.ServiceConditionCompletedSuccessfully},
		"seed":     {"postgres": types.ServiceConditionHealthy, "temporal": "", "vault": "", "hydra": "", "idp": ""},
		"worker":   {"seed": types.ServiceConditionCompletedSuccessfully},
		"codec":    {"seed": types.ServiceConditionCompletedSuccessfully},
	}
	for name, deps := range needs {
		s := svcOf(t, p, name)
		for dep, cond := range deps {
			d, ok := s.DependsOn[dep]
			if !ok || (cond != "" && d.Condition != cond) {
				t.Errorf("%s depends_on %s = %+v, want condition %q", name, dep, d, cond)
			}
		}
	}
}

// composeTemporalArgs is the temporal service's command line: the dev stack's.
func composeTemporalArgs() []string { return TemporalServerArgs("/data/temporal.db") }

// TestComposeTemporalServer: the temporal service runs our authorizing server, built from
// the tools module, with the dev stack's settings; its entrypoint hands it the Web UI's
// client secret from its file (and fails without it).
func TestComposeTemporalServer(t *testing.T) {
	p, root := loadCompose(t)
	tp := svcOf(t, p, "temporal")
	if !slices.Equal(tp.Command, composeTemporalArgs()) {
		t.Errorf("temporal command:\n%q\nwant:\n%q", tp.Command, composeTemporalArgs())
	}
	stages := dockerStages(t, root)
	if !slices.ContainsFunc(stages["build-temporal"], func(l string) bool {
		return strings.HasPrefix(l, "RUN ") && strings.Contains(l, "go build") &&
			strings.Contains(l, "-o /out/temporal-server github.com/oidcflow/oidcflow/tools/temporal/server")
	}) || !slices.Contains(stages["build-temporal"], "WORKDIR /src/tools/temporal") {
		t.Errorf("deploy/Dockerfile stage build-temporal does not build tools/temporal/server in its module: %q", stages["build-temporal"])
	}
	if !slices.Contains(stages["temporal"], "COPY --from=build-temporal /out/temporal-server /usr/local/bin/temporal-server") {
		t.Errorf("deploy/Dockerfile stage temporal does not install /usr/local/bin/temporal-server: %q", stages["temporal"])
	}
	// The SQLite file's folder is the volume "temporal", writable by the service's user.
	if m, ok := mountOf(tp, "/data"); !ok || m.Type != types.VolumeTypeVolume || m.ReadOnly {
		t.Errorf("temporal: no writable volume at /data")
	}
	uid := strconv.Itoa(uidOf(t, tp))
	if !slices.Contains(stages["temporal"], "RUN mkdir /data && chown "+uid+":"+uid+" /data") {
		t.Errorf("deploy/Dockerfile stage temporal does not give /data to uid %s: %q", uid, stages["temporal"])
	}

	// Run the entrypoint with a stand-in server that records its environment and arguments.
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	stub := "#!/bin/sh\nprintf 'secret=%s\\n' \"$TEMPORAL_UI_AUTH_CLIENT_SECRET\" > \"$STUB_OUT\"\nfor a; do printf 'arg=%s\\n' \"$a\" >> \"$STUB_OUT\"; done\n"
	if err := os.WriteFile(filepath.Join(bin, "temporal-server"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	secretFile := envOf(tp, "TEMPORAL_UI_AUTH_CLIENT_SECRET_FILE")
	if !strings.HasPrefix(secretFile, ComposeServiceDir+"/") {
		t.Fatalf("TEMPORAL_UI_AUTH_CLIENT_SECRET_FILE = %q, want a file in %s", secretFile, ComposeServiceDir)
	}
	local := filepath.Join(dir, filepath.Base(secretFile))
	if err := os.WriteFile(local, []byte("ui-secret-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() ([]byte, error) {
		argv := append(slices.Clone(tp.Entrypoint), tp.Command...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "STUB_OUT=" + out, "TEMPORAL_UI_AUTH_CLIENT_SECRET_FILE=" + local}
		return cmd.CombinedOutput()
	}
	if b, err := run(); err != nil {
		t.Fatalf("temporal entrypoint: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "secret=ui-secret-value\n"
	for _, a := range composeTemporalArgs() {
		want += "arg=" + a + "\n"
	}
	if string(got) != want {
		t.Errorf("the server got:\n%s\nwant:\n%s", got, want)
	}
	os.Remove(local)
	os.Remove(out)
	if b, err := run(); err == nil {
		t.Errorf("entrypoint without its secret file started the server:\n%s", b)
	}
}

// dockerStages reads deploy/Dockerfile: stage name -> its instructions (one line each,
// continuations joined).
func dockerStages(t *testing.T, root string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string][]string{}
	cur := ""
	b = []byte(strings.ReplaceAll(string(b), "\\\n", " "))
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		l := strings.Join(strings.Fields(sc.Text()), " ")
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if f := strings.Fields(l); f[0] == "FROM" {
			cur = ""
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				cur = f[3]
			}
			continue
		}
		stages[cur] = append(stages[cur], l)
	}
	return stages
}

// vaultImageArgs is what hashicorp/vault's image runs for a container with args (entrypoint
// not overridden): its docker-entrypoint.sh prefixes `vault` to arguments that start with
// "-" or name a subcommand, and turns `server ARGS` into `vault server
// -config=/vault/config -dev-root-token-id=$VAULT_DEV_ROOT_TOKEN_ID
// -dev-listen-address=${VAULT_DEV_LISTEN_ADDRESS:-0.0.0.0:8200} ARGS`. (It also writes
// $VAULT_LOCAL_CONFIG to /vault/config/local.json, chowns its folders and drops to the
// vault user.) Any other command runs as it is.
func vaultImageArgs(args []string, env func(string) string) []string {
	if len(args) > 0 && strings.HasPrefix(args[0], "-") {
		args = append([]string{"vault"}, args...)
	}
	if len(args) == 0 {
		return args
	}
	switch args[0] {
	case "server":
		listen := env("VAULT_DEV_LISTEN_ADDRESS")
		if listen == "" {
			listen = "0.0.0.0:8200"
		}
		return append([]string{"vault", "server", "-config=/vault/config",
			"-dev-root-token-id=" + env("VAULT_DEV_ROOT_TOKEN_ID"), "-dev-listen-address=" + listen}, args[1:]...)
	case "version", "operator", "status", "login", "read", "write", "secrets", "auth", "policy", "token":
		return append([]string{"vault"}, args...)
	}
	return args
}

// vaultCommand is the vault service's resulting command line and the config files it reads
// (container path -> the clone's file).
func vaultCommand(t *testing.T, p *types.Project) ([]string, map[string]string) {
	t.Helper()
	v := svcOf(t, p, "vault")
	argv := append(slices.Clone(v.Entrypoint), v.Command...)
	if len(v.Entrypoint) == 0 {
		argv = vaultImageArgs(v.Command, func(k string) string { return envOf(v, k) })
	}
	files := map[string]string{}
	for _, m := range v.Volumes {
		if m.Type == types.VolumeTypeBind && strings.HasPrefix(m.Target, "/vault/config/") {
			files[m.Target] = m.Source
		}
	}
	return argv, files
}

// TestComposeVaultReadsItsConfigOnce: every config file of the vault service is read once
// (Vault opens a listener for each listener stanza it reads, so a file read twice makes it
// exit 1 with "address already in use"), nothing is added through VAULT_LOCAL_CONFIG, and it
// is not a dev server. This holds without a Vault binary; TestComposeVaultStarts runs it.
func TestComposeVaultReadsItsConfigOnce(t *testing.T) {
	p, _ := loadCompose(t)
	argv, files := vaultCommand(t, p)
	if len(argv) < 2 || argv[0] != "vault" || argv[1] != "server" {
		t.Fatalf("vault service runs %q, want `vault server`", argv)
	}
	if len(files) != 1 {
		t.Errorf("vault config files %v, want deploy/vault.hcl alone", files)
	}
	reads := map[string]int{}
	for _, a := range argv[2:] {
		if a == "-dev" || strings.HasPrefix(a, "-dev=") {
			t.Errorf("vault runs in dev mode: %q", argv)
		}
		path, ok := strings.CutPrefix(a, "-config=")
		if !ok {
			continue
		}
		for f := range files {
			if f == path || strings.HasPrefix(f, strings.TrimSuffix(path, "/")+"/") {
				reads[f]++
			}
		}
	}
	for f := range files {
		if reads[f] != 1 {
			t.Errorf("vault reads %s %d times (command %q), want once", f, reads[f], argv)
		}
	}
	if v := envOf(svcOf(t, p, "vault"), "VAULT_LOCAL_CONFIG"); v != "" {
		t.Errorf("VAULT_LOCAL_CONFIG adds a second config file: %s", v)
	}
}

// TestComposeVaultStarts runs the vault service's resulting command line (as the image's
// entrypoint expands it) against the clone's Vault binary (bin/vault, built by `make
// tools`), with the compose file's config moved to a free loopback port and a temporary
// storage folder, and checks that it serves sys/health and keeps running.
func TestComposeVaultStarts(t *testing.T) {
	p, root := loadCompose(t)
	bin := filepath.Join(root, "bin", "vault")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no Vault binary at %s (make tools)", bin)
	}
	argv, files := vaultCommand(t, p)
	dir := t.TempDir()
	cfgDir, data := filepath.Join(dir, "config"), filepath.Join(dir, "file")
	for _, d := range []string{cfgDir, data} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	api, cluster, dev := freePort(t), freePort(t), freePort(t)
	rewrite := strings.NewReplacer(
		"/vault/config", cfgDir, "/vault/file", data,
		hostPort(PortVault+1), hostPort(cluster), hostPort(PortVault), hostPort(api),
		"0.0.0.0:8200", "127.0.0.1:"+strconv.Itoa(dev))
	for target, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		out := rewrite.Replace(target)
		if err := os.WriteFile(out, []byte(rewrite.Replace(string(b))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := make([]string, 0, len(argv))
	for _, a := range argv[1:] {
		args = append(args, rewrite.Replace(a))
	}
	var logs strings.Builder
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	url := "http://" + hostPort(api) + "/v1/sys/health"
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("vault %q exited: %v\n%s", args, err, logs.String())
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			var h struct{ Initialized, Sealed bool }
			err = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if err != nil || h.Initialized || !h.Sealed {
				t.Fatalf("sys/health: %v %+v, want a new sealed server", err, h)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vault did not answer %s: %v\n%s", url, err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case err := <-exited:
		exited <- err
		t.Fatalf("vault exited after answering: %v\n%s", err, logs.String())
	case <-time.After(time.Second):
	}
	// The image's -dev-listen-address is ignored outside dev mode.
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(dev), time.Second); err == nil {
		c.Close()
		t.Errorf("vault listens on its dev listen address")
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", Host+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// hbaMethods returns the authentication method that initdb's args give host and local
// connections (initdb's default is trust for both).
func hbaMethods(initdbArgs string) (host, local string) {
	host, local = "trust", "trust"
	f := strings.Fields(initdbArgs)
	for i, a := range f {
		val := func(prefix string) (string, bool) {
			if v, ok := strings.CutPrefix(a, prefix+"="); ok {
				return v, true
			}
			if a == prefix && i+1 < len(f) {
				return f[i+1], true
			}
			return "", false
		}
		if v, ok := val("--auth"); ok {
			host, local = v, v
		} else if v, ok := val("-A"); ok {
			host, local = v, v
		}
	}
	for _, a := range f {
		if v, ok := strings.CutPrefix(a, "--auth-host="); ok {
			host = v
		}
		if v, ok := strings.CutPrefix(a, "--auth-local="); ok {
			local = v
		}
	}
	return host, local
}

// TestComposePostgresRequiresPassword: with host networking every process of the machine
// connects from 127.0.0.1, so no connection may be trusted. The postgres image runs initdb
// with POSTGRES_INITDB_ARGS (whose default trusts local and loopback connections) and adds
// `host all all all $POSTGRES_HOST_AUTH_METHOD`. With PostgreSQL binaries on the machine the
// test does the same and checks that a password-less connection over 127.0.0.1 is refused.
func TestComposePostgresRequiresPassword(t *testing.T) {
	p, _ := loadCompose(t)
	pg := svcOf(t, p, "postgres")
	initdbArgs, hostAuth := envOf(pg, "POSTGRES_INITDB_ARGS"), envOf(pg, "POSTGRES_HOST_AUTH_METHOD")
	host, local := hbaMethods(initdbArgs)
	if host != "scram-sha-256" || hostAuth != "scram-sha-256" {
		t.Errorf("host connections authenticate with %q (POSTGRES_INITDB_ARGS %q) and %q (POSTGRES_HOST_AUTH_METHOD); want scram-sha-256",
			host, initdbArgs, hostAuth)
	}
	if local == "trust" {
		t.Errorf("local connections are trusted (POSTGRES_INITDB_ARGS %q)", initdbArgs)
	}

	binDir, err := PostgresBinDir()
	if err != nil {
		t.Skipf("no PostgreSQL binaries to run initdb with: %v", err)
	}
	cred, uid, gid, err := postgresCred()
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	data, pw := filepath.Join(dir, "data"), filepath.Join(dir, "pw")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if uid >= 0 {
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []string{data, pw} {
			if err := os.Chown(f, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	runAs := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(binDir, name), args...)
		cmd.Dir = dir
		cmd.Env = []string{"LANG=C", "PATH=/usr/bin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
		return cmd
	}
	// As docker_init_database_dir: initdb --username --pwfile $POSTGRES_INITDB_ARGS.
	initdb := runAs("initdb", append([]string{"-D", data, "--username=" + envOf(pg, "POSTGRES_USER"), "--pwfile=" + pw,
		"--no-instructions", "--no-sync"}, strings.Fields(initdbArgs)...)...)
	if b, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, b)
	}
	// As pg_setup_hba_conf (POSTGRES_HOST_AUTH_METHOD defaults to password_encryption,
	// scram-sha-256 since PostgreSQL 14).
	if hostAuth == "" {
		hostAuth = "scram-sha-256"
	}
	hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(hba, "\nhost all all all %s\n", hostAuth)
	hba.Close()

	port := freePort(t)
	var logs strings.Builder
	srv := runAs("postgres", "-D", data, "-p", strconv.Itoa(port), "-c", "listen_addresses="+Host, "-c", "unix_socket_directories=", "-c", "fsync=off")
	srv.Stdout, srv.Stderr = &logs, &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = srv.Process.Signal(syscall.SIGINT)
		_ = srv.Wait()
	}()
	url := func(user string) string {
		return fmt.Sprintf("postgres://%s@%s/postgres?sslmode=disable&connect_timeout=5", user, hostPort(port))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, url(PostgresUser+":secret"))
		if err == nil {
			conn.Close(ctx)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("postgres did not accept its password: %v\n%s", err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	conn, err := pgx.Connect(ctx, url(PostgresUser))
	if err == nil {
		conn.Close(ctx)
		t.Fatalf("a connection from %s without the password was accepted", Host)
	}
	if !strings.Contains(err.Error(), "password") {
		t.Errorf("password-less connection: %v, want a password failure", err)
	}
}

// composeState runs the init step and the seed step's file writing (with the env values Seed
// would set) into a temporary state folder, recording which uid each file was given.
func composeState(t *testing.T) (*Launcher, map[string]int, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	l, err := New(Options{State: filepath.Join(dir, "stack"), Out: io.Discard, Executable: "/nonexistent", Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]int{}
	l.chown = func(path string, uid, gid int) error {
		if uid != gid {
			return errors.New("uid and gid differ")
		}
		owners[path] = uid
		return nil
	}
	if err := l.ComposeInit(); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, v := range []string{EnvTemporalAddress, EnvTemporalNamespace, EnvTemporalUIURL, EnvTaskQueue, EnvIssuer,
		EnvClientID, EnvRedirectURL, EnvWorkerClientID, EnvWorkerClientSecret, EnvUIClientID, EnvUIClientSecret,
		EnvIDPAdminURL, EnvLoginURL, EnvVaultAddr, EnvVaultAuth, EnvVaultRoleID, EnvVaultSecretID, EnvVaultKVMount,
		EnvVaultTransitKey, EnvEnvelopePublicKey, EnvEnvelopeKeysPath, EnvPostgresURL, EnvVaultToken, SettingRefreshGrace} {
		env[v] = "value-of-" + v
	}
	var kv []string
	for k, v := range env {
		kv = append(kv, k, v)
	}
	l.setEnv(kv...)
	if err := l.composeEnvFiles(); err != nil {
		t.Fatal(err)
	}
	return l, owners, env
}

// TestComposeInitPreparesSeed: the seed step writes Vault's init.json and the AppRole's
// secret id into folders it does not create (Seed, unlike Up, prepares no server): the init
// step must have made them.
func TestComposeInitPreparesSeed(t *testing.T) {
	l, _, _ := composeState(t)
	for _, f := range []string{filepath.Join("vault", "init.json"), filepath.Join("vault", "approle.json")} {
		if err := writeSecretFile(l.path(f), []byte("{}")); err != nil {
			t.Errorf("the seed step cannot write %s: %v", f, err)
		}
	}
	if st, err := os.Stat(l.path("vault")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("vault folder: %v (%v), want mode 0700", st.Mode().Perm(), err)
	}
}

// composeShares maps each volume that the init or seed step mounts under
// /stack/<composeShare>/ to that folder's name.
func composeShares(t *testing.T, p *types.Project) map[string]string {
	t.Helper()
	shares := map[string]string{}
	for _, name := range []string{"init", "seed"} {
		for _, m := range svcOf(t, p, name).Volumes {
			if svc, ok := strings.CutPrefix(m.Target, "/stack/"+composeShare+"/"); ok {
				if prev, ok := shares[m.Source]; ok && prev != svc {
					t.Errorf("volume %s mounted for %s and %s", m.Source, prev, svc)
				}
				shares[m.Source] = svc
			}
		}
	}
	return shares
}

// TestComposeServiceFilesBelongToTheirUser: every file the init and seed steps write for a
// service is owned by the uid that service runs as, mode 0600, in a folder of its own
// (mode 0700), mounted by that service alone at ComposeServiceDir. (The temporal image's
// user could not read the root-owned password file it needed.)
func TestComposeServiceFilesBelongToTheirUser(t *testing.T) {
	p, _ := loadCompose(t)
	l, owners, _ := composeState(t)
	shares := composeShares(t, p)
	for vol, svc := range shares {
		users := slices.DeleteFunc(mountersOf(p, vol), func(n string) bool { return n == "init" || n == "seed" })
		want := []string{svc}
		if svc == "hydra" {
			want = append(want, "hydra-migrate") // it reads Hydra's configuration too
		}
		if !slices.Equal(users, want) {
			t.Errorf("volume %s is mounted by %v, want %v", vol, users, want)
		}
		folder := l.composePath(svc)
		entries, err := os.ReadDir(folder)
		if err != nil || len(entries) == 0 {
			t.Errorf("nothing written for %s (%v)", svc, err)
			continue
		}
		for _, user := range users {
			s := svcOf(t, p, user)
			m, _ := mountOf(s, ComposeServiceDir)
			if m.Source != vol {
				t.Errorf("%s mounts %s at %q, want %s", user, vol, m.Target, ComposeServiceDir)
			}
			uid := uidOf(t, s)
			if owners[folder] != uid {
				t.Errorf("%s: folder owned by %d, the service runs as %d", user, owners[folder], uid)
			}
			for _, e := range entries {
				path := filepath.Join(folder, e.Name())
				st, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if got, ok := owners[path]; !ok || got != uid || st.Mode().Perm() != 0o600 {
					t.Errorf("%s: %s owned by %d (given: %v) mode %v; the service runs as %d: want it its own, 0600", user, e.Name(), got, ok, st.Mode().Perm(), uid)
				}
			}
		}
		if st, err := os.Stat(folder); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: folder mode %v (%v), want 0700", svc, st.Mode().Perm(), err)
		}
	}
	// The files each service is pointed at are among them.
	paths := map[string][]string{
		"postgres": {envOf(svcOf(t, p, "postgres"), "POSTGRES_PASSWORD_FILE")},
		"temporal": {envOf(svcOf(t, p, "temporal"), "TEMPORAL_UI_AUTH_CLIENT_SECRET_FILE")},
		"hydra":    {flagValue(svcOf(t, p, "hydra").Command, "--config")},
		"idp":      {flagValue(svcOf(t, p, "idp").Command, "--hook-key-file"), flagValue(svcOf(t, p, "idp").Command, "--personas")},
		"worker":   {envOf(svcOf(t, p, "worker"), "OIDCFLOW_ENV_FILE")},
		"codec": {envOf(svcOf(t, p, "codec"), "OIDCFLOW_ENV_FILE"), envOf(svcOf(t, p, "codec"), "OIDCFLOW_CODEC_TLS_CERT"),
			envOf(svcOf(t, p, "codec"), "OIDCFLOW_CODEC_TLS_KEY")},
	}
	for svc, files := range paths {
		for _, f := range files {
			name, ok := strings.CutPrefix(f, ComposeServiceDir+"/")
			if _, err := os.Stat(l.composePath(svc, name)); !ok || err != nil {
				t.Errorf("%s reads %q, which the init and seed steps do not write for it", svc, f)
			}
		}
	}
	// Users of our own images agree with the Dockerfile; the rest are named in compose.
	for svc, uid := range ComposeUsers {
		if got := uidOf(t, svcOf(t, p, svc)); got != uid {
			t.Errorf("%s runs as %d, ComposeUsers says %d", svc, got, uid)
		}
	}
}

// TestComposeRootTokenOnlyInInitAndSeed: Vault's unseal key and root token (and every other
// generated secret) stay in the state volume, which only the init and seed steps mount; the
// worker's env file holds its AppRole ids and its client secret, never the root token or the
// Web UI's secret, which reaches the temporal service alone.
func TestComposeRootTokenOnlyInInitAndSeed(t *testing.T) {
	p, _ := loadCompose(t)
	if got := mountersOf(p, "stack"); !slices.Equal(got, []string{"init", "seed"}) {
		t.Errorf("the state volume is mounted by %v, want init and seed only", got)
	}
	for name, s := range p.Services {
		for _, m := range s.Volumes {
			if (m.Target == "/stack" || strings.HasPrefix(m.Target, "/stack/")) && name != "init" && name != "seed" {
				t.Errorf("%s mounts %s at %s", name, m.Source, m.Target)
			}
		}
		for k := range s.Environment {
			if k == EnvVaultToken || k == EnvUIClientSecret || (strings.HasPrefix(k, "TEMPORAL_UI_AUTH_CLIENT_SECRET") && name != "temporal") {
				t.Errorf("%s's environment has %s", name, k)
			}
		}
	}
	l, _, env := composeState(t)
	read := func(svc string) map[string]string {
		got, err := config.ReadEnvFile(l.composePath(svc, "env"))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	worker, codec := read("worker"), read("codec")
	for _, k := range []string{EnvVaultRoleID, EnvVaultSecretID, EnvWorkerClientSecret, EnvPostgresURL} {
		if worker[k] != env[k] {
			t.Errorf("worker env file: %s = %q, want %q", k, worker[k], env[k])
		}
	}
	for _, k := range []string{EnvVaultRoleID, EnvVaultSecretID} {
		if codec[k] != env[k] {
			t.Errorf("codec env file: %s = %q, want %q", k, codec[k], env[k])
		}
	}
	if worker[EnvVaultAuth] != env[EnvVaultAuth] {
		t.Errorf("worker env file lacks %s", EnvVaultAuth)
	}
	for svc, got := range map[string]map[string]string{"worker": worker, "codec": codec} {
		for k, v := range got {
			if v == env[EnvVaultToken] || v == env[EnvUIClientSecret] || k == EnvVaultToken || k == EnvUIClientSecret {
				t.Errorf("%s env file has %s", svc, k)
			}
		}
	}
	for _, k := range []string{EnvWorkerClientSecret, EnvPostgresURL} {
		if _, ok := codec[k]; ok {
			t.Errorf("codec env file has %s, which only the worker needs", k)
		}
	}
	// No service's folder holds the root token, and only temporal's the Web UI's secret.
	sec, err := l.hydraSecrets()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(l.composePath("temporal", "ui-client-secret")); err != nil || string(b) != sec.UISecret {
		t.Errorf("temporal's ui-client-secret: %q (%v), want the temporal-ui client's secret", b, err)
	}
	_ = filepath.WalkDir(l.path(composeShare), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		rel, _ := filepath.Rel(l.path(composeShare), path)
		if strings.Contains(string(b), env[EnvVaultToken]) {
			t.Errorf("%s holds the root token", rel)
		}
		if strings.Contains(string(b), sec.UISecret) && rel != filepath.Join("temporal", "ui-client-secret") {
			t.Errorf("%s holds the Web UI's client secret", rel)
		}
		return nil
	})
}

// TestComposeBuildsItsImages: images of our own are built, never pulled (a registry could
// serve anything under their names).
func TestComposeBuildsItsImages(t *testing.T) {
	p, _ := loadCompose(t)
	n := 0
	for name, s := range p.Services {
		if s.Build == nil {
			continue
		}
		n++
		if s.PullPolicy != types.PullPolicyBuild {
			t.Errorf("%s: pull_policy %q, want %q (it is built from deploy/Dockerfile)", name, s.PullPolicy, types.PullPolicyBuild)
		}
		if !strings.HasPrefix(s.Image, "oidcflow/") {
			t.Errorf("%s: image %q, want an oidcflow/ name", name, s.Image)
		}
	}
	if n == 0 {
		t.Error("no service is built")
	}
}

// addressRE finds host:port pairs and URLs' hosts.
var addressRE = regexp.MustCompile(`(?:^|[/=@\s])((?:\d{1,3}\.){3}\d{1,3}|localhost|\[[0-9a-fA-F:]*\]|[a-zA-Z0-9.-]+\.[a-z]+)(?::\d+)`)

// TestComposeBindsLoopbackOnly: every address a service is given is 127.0.0.1, the Web UI
// is served by the temporal service on --ip (no separate UI image whose TEMPORAL_UI_IP
// ui-server 2.42.1 ignores), and nothing names another interface.
func TestComposeBindsLoopbackOnly(t *testing.T) {
	p, _ := loadCompose(t)
	for name, s := range p.Services {
		var words []string
		words = append(append(words, s.Entrypoint...), s.Command...)
		for k, v := range s.Environment {
			if strings.Contains(k, "_IP") || strings.Contains(k, "BIND") {
				t.Errorf("%s: %s; bind addresses are flags of our own servers", name, k)
			}
			if v != nil {
				words = append(words, k+"="+*v)
			}
		}
		for _, w := range words {
			for _, m := range addressRE.FindAllStringSubmatch(w, -1) {
				if m[1] != Host {
					t.Errorf("%s: %q names %s, want %s", name, w, m[1], Host)
				}
			}
		}
	}
	tp := svcOf(t, p, "temporal")
	if flagValue(tp.Command, "--ip") != Host || flagValue(tp.Command, "--ui-port") != strconv.Itoa(PortTemporalUI) {
		t.Errorf("temporal: --ip %q --ui-port %q", flagValue(tp.Command, "--ip"), flagValue(tp.Command, "--ui-port"))
	}
	if ip := flagValue(tp.Command, "--ui-ip"); ip != "" && ip != Host {
		t.Errorf("temporal: --ui-ip %q", ip)
	}
	for name, s := range p.Services {
		if strings.HasPrefix(s.Image, "temporalio/ui") {
			t.Errorf("%s runs %s, which listens on every interface", name, s.Image)
		}
	}
	pg := svcOf(t, p, "postgres")
	if !slices.Contains(pg.Command, "listen_addresses="+Host) {
		t.Errorf("postgres command %v", pg.Command)
	}
}

// TestComposeWorker: the compose worker is configured as the dev stack's: role hierarchy
// from the personas file (baked into its image), a bearer token from the worker client to
// Temporal, encrypted payloads.
func TestComposeWorker(t *testing.T) {
	p, root := loadCompose(t)
	w := svcOf(t, p, "worker")
	const hierarchy = "/etc/oidcflow/personas.json"
	want := map[string]string{
		"OIDCFLOW_ROLE_HIERARCHY":   "@" + hierarchy,
		"OIDCFLOW_TEMPORAL_AUTH":    "client-credentials",
		EnvWorkerClientID:           ClientWorker,
		"OIDCFLOW_ENCRYPT_PAYLOADS": "true",
	}
	for k, v := range want {
		if got := envOf(w, k); got != v {
			t.Errorf("worker %s = %q, want %q", k, got, v)
		}
	}
	// The dev stack's hierarchy is internal/devstack/idp/personas.json (see Up).
	if !slices.Contains(dockerStages(t, root)["worker"], "COPY internal/devstack/idp/personas.json "+hierarchy) {
		t.Errorf("deploy/Dockerfile stage worker does not install the personas file at %s", hierarchy)
	}
	h, err := identity.ParseHierarchy("@" + filepath.Join(root, "internal", "devstack", "idp", "personas.json"))
	if err != nil || h.Expand([]string{"admin"}, nil) == nil || len(h.Expand([]string{"admin"}, nil)) < 2 {
		t.Errorf("the personas file gives admin no implied roles: %v %v", h.Expand([]string{"admin"}, nil), err)
	}
	if w.Build == nil || w.Build.Target != "worker" || len(w.Entrypoint) != 0 || len(w.Command) != 0 {
		t.Errorf("worker: build %+v entrypoint %q command %q, want the worker image as it is", w.Build, w.Entrypoint, w.Command)
	}
	if uidOf(t, w) == 0 {
		t.Errorf("worker runs as root")
	}
}

// TestComposeCodec: the codec server serves the Web UI's codec endpoint over TLS with the
// init step's certificate, for the UI's origin and temporal-audience tokens.
func TestComposeCodec(t *testing.T) {
	p, _ := loadCompose(t)
	c := svcOf(t, p, "codec")
	want := map[string]string{
		"OIDCFLOW_CODEC_LISTEN":        hostPort(PortCodec),
		"OIDCFLOW_CODEC_TLS_CERT":      ComposeServiceDir + "/tls.crt",
		"OIDCFLOW_CODEC_TLS_KEY":       ComposeServiceDir + "/tls.key",
		"OIDCFLOW_CODEC_ORIGINS":       TemporalUIURL(),
		"OIDCFLOW_TEMPORAL_AUDIENCE":   TemporalAudience,
		"OIDCFLOW_PAYLOAD_TRANSIT_KEY": "oidcflow-payloads",
	}
	for k, v := range want {
		if got := envOf(c, k); got != v {
			t.Errorf("codec %s = %q, want %q", k, got, v)
		}
	}
	if got := envOf(svcOf(t, p, "worker"), "OIDCFLOW_PAYLOAD_TRANSIT_KEY"); got != want["OIDCFLOW_PAYLOAD_TRANSIT_KEY"] {
		t.Errorf("worker encrypts with transit key %q, the codec server decrypts with %q", got, want["OIDCFLOW_PAYLOAD_TRANSIT_KEY"])
	}
	if c.Build == nil || c.Build.Target != "worker" || !slices.Equal(c.Command, []string{"codec-server"}) || len(c.Entrypoint) != 0 {
		t.Errorf("codec: build %+v entrypoint %q command %q, want `worker codec-server`", c.Build, c.Entrypoint, c.Command)
	}
	if got := flagValue(svcOf(t, p, "temporal").Command, "--ui-codec-endpoint"); got != "https://"+want["OIDCFLOW_CODEC_LISTEN"] {
		t.Errorf("the Web UI's codec endpoint %q is not the codec server's", got)
	}
	if hp := envOf(c, "OIDCFLOW_HTTP_ADDR"); hp == "" || hp == envOf(svcOf(t, p, "worker"), "OIDCFLOW_HTTP_ADDR") || hp == "127.0.0.1:9090" {
		t.Errorf("codec's OIDCFLOW_HTTP_ADDR is the worker's (%s); both use the host's network", hp)
	}

	l, _, _ := composeState(t)
	caPEM, err := os.ReadFile(l.path(ComposeCodecCA))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _ := os.ReadFile(l.composePath("codec", "tls.crt"))
	keyPEM, _ := os.ReadFile(l.composePath("codec", "tls.key"))
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("codec CA: no certificate")
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		t.Fatal("codec certificate: not PEM")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: Host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("codec certificate does not verify for %s against the CA: %v", Host, err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Errorf("codec key pair: %v", err)
	}
	// A second init keeps the CA and the certificate.
	if err := l.ComposeInit(); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(l.composePath("codec", "tls.crt")); string(again) != string(certPEM) {
		t.Error("a second init replaced a valid certificate")
	}
}

// TestComposeHydraConfig: compose's Hydra gets HydraConfig, the dev stack's configuration,
// with its own database: the permissions claim is allowed at the top level (the temporal
// server authorizes by it).
func TestComposeHydraConfig(t *testing.T) {
	l, _, _ := composeState(t)
	b, err := os.ReadFile(l.composePath("hydra", "hydra.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	sec, err := l.hydraSecrets()
	if err != nil {
		t.Fatal(err)
	}
	var pg pgState
	if err := readJSON(l.path("postgres", "secrets.json"), &pg); err != nil {
		t.Fatal(err)
	}
	wantDSN := "postgres://" + PostgresUser + ":" + pg.Password + "@" + hostPort(PortPostgres) + "/" + HydraDatabase + "?sslmode=disable"
	var want map[string]any
	wb, _ := json.Marshal(HydraConfig(wantDSN, sec, func(string) string { return "" }))
	_ = json.Unmarshal(wb, &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("compose's hydra.yaml:\n%s\nwant HydraConfig:\n%s", b, wb)
	}
	claims, _ := got["oauth2"].(map[string]any)["allowed_top_level_claims"].([]any)
	if !slices.Contains(claims, any("permissions")) {
		t.Errorf("allowed_top_level_claims %v lacks permissions", claims)
	}
	if pw, _ := os.ReadFile(l.composePath("postgres", "password")); string(pw) != pg.Password {
		t.Error("postgres's password file differs from the password in Hydra's DSN")
	}
}

// TestComposeSeedUsesDevStackValues checks that the seed and init steps of compose produce
// the dev stack's env names, client ids and Vault paths: they run this package's code, so
// the check is on the values that code uses.
func TestComposeSeedUsesDevStackValues(t *testing.T) {
	ids := []string{}
	for _, c := range SeededClients() {
		ids = append(ids, c.ClientID)
	}
	if !slices.Equal(ids, []string{ClientStarter, ClientWorker, ClientUI, ClientOperator}) {
		t.Errorf("seeded clients = %v", ids)
	}
	cfg := HydraConfig("postgres://x", hydraSecrets{HookKey: "k", System: "s"}, func(string) string { return "" })
	serve := cfg["serve"].(map[string]any)
	if serve["public"].(map[string]any)["port"] != PortHydraPublic || serve["admin"].(map[string]any)["port"] != PortHydraAdmin {
		t.Errorf("hydra serve = %v", serve)
	}
	urls := cfg["urls"].(map[string]any)
	if urls["login"] != LoginURL()+"/login" || urls["self"].(map[string]any)["issuer"] != Issuer() {
		t.Errorf("hydra urls = %v", urls)
	}
	pol := WorkerPolicy()
	for _, p := range []string{VaultKVMount + "/data/" + VaultSessionsPrefix + "/*", VaultKVMount + "/data/" + VaultEnvelopeKeysPath,
		VaultTransitMount + "/encrypt/" + VaultTransitKey, VaultTransitMount + "/decrypt/" + VaultTransitKey,
		VaultTransitMount + "/datakey/plaintext/" + VaultPayloadTransitKey, VaultTransitMount + "/decrypt/" + VaultPayloadTransitKey} {
		if !strings.Contains(pol, `"`+p+`"`) {
			t.Errorf("worker policy lacks %s", p)
		}
	}
	if strings.Contains(pol, "sys/") || strings.Contains(pol, `"*"`) {
		t.Errorf("worker policy reaches beyond its paths:\n%s", pol)
	}
}

// TestEnvFileFromVars: the env file lists what the launcher set in config.Vars' order, each
// under its description, reads back as it was set, and refuses a variable Vars lacks.
func TestEnvFileFromVars(t *testing.T) {
	set := map[string]string{EnvVaultToken: "root", EnvTemporalAddress: "127.0.0.1:7233", EnvIssuer: "http://127.0.0.1:4444"}
	b, err := envFile(set)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, line := range strings.Split(string(b), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			order = append(order, k)
		}
	}
	if want := []string{EnvTemporalAddress, EnvIssuer, EnvVaultToken}; !slices.Equal(order, want) {
		t.Errorf("env file order %v, want config.Vars' %v", order, want)
	}
	if !strings.Contains(string(b), "\n# OIDC issuer URL") {
		t.Errorf("env file has no descriptions:\n%s", b)
	}
	path := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := config.ReadEnvFile(path)
	if err != nil || !maps.Equal(got, set) {
		t.Errorf("read back %v (%v), want %v", got, err, set)
	}
	set["OIDCFLOW_UNDOCUMENTED"] = "x"
	if _, err := envFile(set); err == nil || !strings.Contains(err.Error(), "OIDCFLOW_UNDOCUMENTED") {
		t.Errorf("an undocumented variable: %v", err)
	}
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimRight(l, " "); l != "" && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
