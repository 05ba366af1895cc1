package pool

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/workflow"
)

// lookup returns a lookup over vars only (no process environment, no env file).
func lookup(vars ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(vars); i += 2 {
		m[vars[i]] = vars[i+1]
	}
	return func(name string) (string, bool) { v, ok := m[name]; return v, ok }
}

func valid() Config {
	return Config{Issuer: "https://idp.example", VaultRoleID: "role"}
}

// TestValidateNamesTheVariable: each bad setting fails Validate with ErrConfig, and the
// message names its environment variable and field.
func TestValidateNamesTheVariable(t *testing.T) {
	for _, tc := range []struct {
		env   string
		field string
		mod   func(*Config)
	}{
		{"OIDCFLOW_ISSUER", "Issuer", func(c *Config) { c.Issuer = "" }},
		{"OIDCFLOW_ISSUER", "Issuer", func(c *Config) { c.Issuer = "idp.example" }},
		{"OIDCFLOW_LEEWAY", "Leeway", func(c *Config) { c.Leeway = -time.Second }},
		{"OIDCFLOW_REFRESH_SKEW", "RefreshSkew", func(c *Config) { c.RefreshSkew = -time.Second }},
		{"OIDCFLOW_ENVELOPE_MAX_AGE", "EnvelopeMaxAge", func(c *Config) { c.EnvelopeMaxAge = 25 * time.Hour }},
		{"OIDCFLOW_MAX_BACKLOG", "MaxBacklog", func(c *Config) { c.MaxBacklog = 48 * time.Hour }},
		{"OIDCFLOW_SWEEP_INTERVAL", "SweepInterval", func(c *Config) { c.SweepInterval = time.Second }},
		{"OIDCFLOW_SHUTDOWN_TIMEOUT", "ShutdownTimeout", func(c *Config) { c.ShutdownTimeout = -1 }},
		{"OIDCFLOW_MAX_CONCURRENT_ACTIVITIES", "MaxConcurrentActivities", func(c *Config) { c.MaxConcurrentActivities = -1 }},
		{"OIDCFLOW_POLLERS", "Pollers", func(c *Config) { c.Pollers = "many" }},
		{"OIDCFLOW_POLLERS", "Pollers", func(c *Config) { c.Pollers = "1" }},
		{"OIDCFLOW_TEMPORAL_AUTH", "TemporalAuth", func(c *Config) { c.TemporalAuth = "mtls" }},
		{"OIDCFLOW_WORKER_CLIENT_SECRET", "WorkerClientSecret", func(c *Config) { c.TemporalAuth = TemporalAuthClientCredentials }},
		{"OIDCFLOW_VAULT_AUTH", "VaultAuth", func(c *Config) { c.VaultAuth = "userpass" }},
		{"OIDCFLOW_VAULT_ROLE_ID", "VaultRoleID", func(c *Config) { c.VaultRoleID = "" }},
		{"VAULT_TOKEN", "VaultToken", func(c *Config) { c.VaultAuth = "token" }},
		{"OIDCFLOW_VAULT_K8S_ROLE", "VaultKubernetesRole", func(c *Config) { c.VaultAuth = "kubernetes" }},
		{"VAULT_ADDR", "VaultAddress", func(c *Config) { c.VaultAddress = "::" }},
		{"OIDCFLOW_CLAIMS", "Claims", func(c *Config) { c.Claims = "azure" }},
		{"OIDCFLOW_CLAIMS", "Claims", func(c *Config) { c.Claims = "auth0" }},
		{"OIDCFLOW_ROLE_HIERARCHY", "RoleHierarchy", func(c *Config) { c.RoleHierarchy = "{" }},
		{"OIDCFLOW_PAYLOAD_TRANSIT_KEY", "PayloadTransitKey", func(c *Config) { c.PayloadTransitKey = "transit/keys/x" }},
		{"OIDCFLOW_DEPLOYMENT_NAME", "DeploymentName", func(c *Config) { c.BuildID = "v2" }},
		{"OIDCFLOW_BUILD_ID", "BuildID", func(c *Config) { c.DeploymentName = "oidcflow" }},
		{"OIDCFLOW_DEPLOYMENT_NAME", "DeploymentName", func(c *Config) { c.DeploymentName, c.BuildID = "oidcflow.eu", "v2" }},
		{"OIDCFLOW_DEPLOYMENT_NAME", "DeploymentName", func(c *Config) { c.DeploymentName, c.BuildID = "oidcflow:eu", "v2" }},
		{"OIDCFLOW_DEPLOYMENT_NAME", "DeploymentName", func(c *Config) { c.DeploymentName, c.BuildID = "__oidcflow", "v2" }},
		{"OIDCFLOW_BUILD_ID", "BuildID", func(c *Config) { c.DeploymentName, c.BuildID = "oidcflow", "__unversioned__" }},
		{"OIDCFLOW_BUILD_ID", "BuildID", func(c *Config) { c.DeploymentName, c.BuildID = "oidcflow", strings.Repeat("b", 256) }},
		{"OIDCFLOW_DEPLOYMENT_SET_CURRENT_IF_UNSET", "SetCurrentIfUnset", func(c *Config) { c.SetCurrentIfUnset = true }},
	} {
		c := valid()
		tc.mod(&c)
		err := c.Validate()
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", tc.env, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.env) || !strings.Contains(msg, "Config."+tc.field) {
			t.Errorf("%s: the error does not name the variable and the field: %v", tc.env, err)
		}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("a valid config: %v", err)
	}
	versioned := valid()
	versioned.DeploymentName, versioned.BuildID, versioned.SetCurrentIfUnset = "oidcflow", "2026.05.1-3f2a9c1", true
	versioned.DefaultVersioningBehavior = workflow.VersioningBehaviorAutoUpgrade
	if err := versioned.Validate(); err != nil {
		t.Errorf("a versioned config: %v", err)
	}
	versioned.DefaultVersioningBehavior = 7
	if err := versioned.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "Config.DefaultVersioningBehavior") {
		t.Errorf("an unknown versioning behaviour: %v", err)
	}
	off := valid()
	off.SweepInterval = -1
	if err := off.Validate(); err != nil {
		t.Errorf("a negative sweep interval (leave the schedule alone): %v", err)
	}
}

// TestNewFailsBeforeTheNetwork: New refuses a bad config before it dials anything (the
// addresses point nowhere, so a dial would fail with another error).
func TestNewFailsBeforeTheNetwork(t *testing.T) {
	c := valid()
	c.Leeway = -time.Minute
	c.VaultAddress, c.TemporalAddress = "http://127.0.0.1:1", "127.0.0.1:1"
	if _, err := New(context.Background(), c); !errors.Is(err, ErrConfig) {
		t.Fatalf("New: %v, want ErrConfig", err)
	}
}

// TestFromLookup: unset variables take config.Vars' defaults; a malformed duration or number
// fails with the variable's name; OIDCFLOW_SWEEP_INTERVAL=0 leaves the schedule alone.
func TestFromLookup(t *testing.T) {
	c, err := FromLookup(lookup("OIDCFLOW_ISSUER", "https://idp.example", "OIDCFLOW_LEEWAY", "5s"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "https://idp.example" || c.Leeway != 5*time.Second || c.TaskQueue != "oidcflow" ||
		c.ClientID != "starter" || c.MaxBacklog != time.Hour || c.SweepInterval != time.Minute {
		t.Errorf("config %+v", c)
	}
	if c, _ := FromLookup(lookup("OIDCFLOW_SWEEP_INTERVAL", "0")); c.SweepInterval >= 0 {
		t.Errorf("OIDCFLOW_SWEEP_INTERVAL=0 gave %s, want negative (off)", c.SweepInterval)
	}
	if c.BuildID != "" || c.DeploymentName != "" || c.SetCurrentIfUnset {
		t.Errorf("versioning is on by default: %+v", c)
	}
	c, err = FromLookup(lookup("OIDCFLOW_DEPLOYMENT_NAME", "oidcflow", "OIDCFLOW_BUILD_ID", "v2",
		"OIDCFLOW_DEPLOYMENT_SET_CURRENT_IF_UNSET", "true"))
	if err != nil || c.DeploymentName != "oidcflow" || c.BuildID != "v2" || !c.SetCurrentIfUnset {
		t.Errorf("versioning settings: %+v, %v", c, err)
	}
	for _, bad := range [][2]string{{"OIDCFLOW_LEEWAY", "soon"}, {"OIDCFLOW_MAX_BACKLOG", "1"},
		{"OIDCFLOW_MAX_CONCURRENT_ACTIVITIES", "many"}, {"OIDCFLOW_DEPLOYMENT_SET_CURRENT_IF_UNSET", "yes please"}} {
		_, err := FromLookup(lookup(bad[0], bad[1]))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%s=%s: %v", bad[0], bad[1], err)
		}
	}
}

// TestDefaultsMatchConfigVars: a zero Config means the environment's defaults, and every
// field read from the environment documents its variable and its default as config.Vars
// holds them, so the README table, FromEnv and the doc comments agree.
func TestDefaultsMatchConfigVars(t *testing.T) {
	d := Config{}.withDefaults()
	fromEnv, err := FromLookup(lookup())
	if err != nil {
		t.Fatal(err)
	}
	fromEnv.SweepInterval = time.Minute // FromLookup read the default 1m, not 0
	var zero Config
	for i, f := range zero.fields() {
		got, want := d.fields()[i].ptr, fromEnv.fields()[i].ptr
		switch g := got.(type) {
		case *string:
			if *g != *want.(*string) {
				t.Errorf("%s: default %q, FromEnv %q", f.name, *g, *want.(*string))
			}
		case *time.Duration:
			if *g != *want.(*time.Duration) {
				t.Errorf("%s: default %s, FromEnv %s", f.name, *g, *want.(*time.Duration))
			}
		case *bool:
			if *g != *want.(*bool) {
				t.Errorf("%s: default %t, FromEnv %t", f.name, *g, *want.(*bool))
			}
		}
	}

	docs := fieldDocs(t)
	for _, f := range zero.fields() {
		doc := docs[f.name]
		if !strings.Contains(doc, f.env) {
			t.Errorf("Config.%s's comment does not name %s", f.name, f.env)
		}
		def := defaultOf(f.env)
		want := "default " + def
		switch f.ptr.(type) {
		case *string:
			if want = `default "` + def + `"`; def == "" {
				want = "default none"
			}
		}
		if f.name == "Issuer" {
			want = "required"
		}
		if !strings.Contains(doc, want) {
			t.Errorf("Config.%s's comment does not say %q (config.Vars: %q): %q", f.name, want, def, doc)
		}
	}
}

// fieldDocs returns the doc comments of Config's fields, by name.
func fieldDocs(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "config.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "Config" {
			return true
		}
		for _, fl := range ts.Type.(*ast.StructType).Fields.List {
			for _, name := range fl.Names {
				docs[name.Name] = strings.Join(strings.Fields(fl.Doc.Text()), " ")
			}
		}
		return false
	})
	return docs
}
