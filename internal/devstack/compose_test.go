package devstack

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/oidcflow/oidcflow/internal/config"
	"go.yaml.in/yaml/v3"
)

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	NetworkMode string            `yaml:"network_mode"`
	Command     []string          `yaml:"command"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	Build       struct {
		Dockerfile string `yaml:"dockerfile"`
		Target     string `yaml:"target"`
	} `yaml:"build"`
}

func loadCompose(t *testing.T) (composeFile, string) {
	t.Helper()
	root, err := FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c, root
}

// flagValue returns the argument after name in args ("" if absent).
func flagValue(args []string, name string) string {
	if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

func TestComposeAgreesWithDevStack(t *testing.T) {
	c, root := loadCompose(t)
	port := strconv.Itoa
	want := []string{"init", "postgres", "temporal", "temporal-ui", "vault", "hydra-migrate", "hydra", "idp", "seed", "worker"}
	for _, name := range want {
		s, ok := c.Services[name]
		if !ok {
			t.Errorf("service %s missing", name)
			continue
		}
		// Host networking on loopback: same addresses as the dev stack, nothing published.
		if s.NetworkMode != "host" || len(s.Ports) > 0 {
			t.Errorf("%s: network_mode %q, ports %v; want host networking and no published ports", name, s.NetworkMode, s.Ports)
		}
	}

	images := map[string]string{
		"postgres": "postgres:15", "temporal": "temporalio/auto-setup:1.29.1", "temporal-ui": "temporalio/ui:2.42.1",
		"vault": "hashicorp/vault:1.21.0", "hydra": "oryd/hydra:v2.3.0", "hydra-migrate": "oryd/hydra:v2.3.0",
	}
	for name, img := range images {
		if got := c.Services[name].Image; got != img {
			t.Errorf("%s image = %q, want %q", name, got, img)
		}
	}
	for _, name := range []string{"init", "idp", "seed"} {
		if b := c.Services[name].Build; b.Dockerfile != "deploy/Dockerfile" || b.Target != "devstack" {
			t.Errorf("%s build = %+v, want deploy/Dockerfile target devstack", name, b)
		}
	}
	if b := c.Services["worker"].Build; b.Dockerfile != "deploy/Dockerfile" || b.Target != "worker" {
		t.Errorf("worker build = %+v", b)
	}

	pg := c.Services["postgres"]
	if flagValue(pg.Command, "-p") != port(PortPostgres) || pg.Environment["PGPORT"] != port(PortPostgres) ||
		!slices.Contains(pg.Command, "listen_addresses="+Host) || pg.Environment["POSTGRES_USER"] != PostgresUser {
		t.Errorf("postgres: command %v env %v; want port %d on %s, user %s", pg.Command, pg.Environment, PortPostgres, Host, PostgresUser)
	}
	initSQL, err := os.ReadFile(filepath.Join(root, "deploy", "postgres-init.sql"))
	if err != nil || !strings.Contains(string(initSQL), "CREATE DATABASE "+PostgresDatabase+";") {
		t.Errorf("deploy/postgres-init.sql does not create database %s (%v)", PostgresDatabase, err)
	}

	tp := c.Services["temporal"]
	if tp.Environment["FRONTEND_GRPC_PORT"] != port(PortTemporal) || tp.Environment["BIND_ON_IP"] != Host ||
		tp.Environment["DEFAULT_NAMESPACE"] != TemporalNamespace || tp.Environment["DB_PORT"] != port(PortPostgres) {
		t.Errorf("temporal env = %v", tp.Environment)
	}
	ui := c.Services["temporal-ui"]
	if ui.Environment["TEMPORAL_ADDRESS"] != TemporalAddress() || ui.Environment["TEMPORAL_UI_PORT"] != port(PortTemporalUI) ||
		ui.Environment["TEMPORAL_UI_IP"] != Host || ui.Environment["TEMPORAL_DEFAULT_NAMESPACE"] != TemporalNamespace {
		t.Errorf("temporal-ui env = %v", ui.Environment)
	}

	hcl, err := os.ReadFile(filepath.Join(root, "deploy", "vault.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stripComments(string(hcl)), stripComments(VaultConfig("/vault/file")); got != want {
		t.Errorf("deploy/vault.hcl differs from VaultConfig:\n%s\nwant:\n%s", got, want)
	}

	for _, name := range []string{"hydra", "hydra-migrate"} {
		if got := flagValue(c.Services[name].Command, "--config"); got != "/stack/hydra/hydra.yaml" {
			t.Errorf("%s --config = %q, want the file compose-init writes", name, got)
		}
	}
	idp := c.Services["idp"]
	if flagValue(idp.Command, "--addr") != hostPort(PortIDP) || flagValue(idp.Command, "--hydra-admin") != HydraAdminURL() ||
		flagValue(idp.Command, "--personas") != "/stack/idp/personas.json" || flagValue(idp.Command, "--hook-key-file") != "/stack/idp/hook-key" {
		t.Errorf("idp command = %v", idp.Command)
	}
	for _, name := range []string{"init", "seed"} {
		if flagValue(c.Services[name].Command, "--state") != "/stack" {
			t.Errorf("%s command = %v, want --state /stack", name, c.Services[name].Command)
		}
	}
	if ep := strings.Join(c.Services["worker"].Entrypoint, " "); !strings.Contains(ep, ". /stack/env") {
		t.Errorf("worker entrypoint %q does not read the env file the seed step writes", ep)
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
	if !slices.Equal(ids, []string{ClientStarter, ClientWorker, ClientUI}) {
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
