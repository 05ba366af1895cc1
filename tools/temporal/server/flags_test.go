package main

import (
	"bytes"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
)

func noEnv(string) string { return "" }

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags([]string{"--db-filename", "/tmp/x.db"}, noEnv, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.ip != "127.0.0.1" || o.port != 7233 || o.internalPort != 7236 || o.uiPort != 8233 {
		t.Errorf("defaults %s %d %d %d", o.ip, o.port, o.internalPort, o.uiPort)
	}
	if o.authOn() || o.uiAuthOn() {
		t.Error("auth on by default")
	}
	if len(o.namespaces) != 1 || o.namespaces[0] != "default" {
		t.Errorf("namespaces %v", o.namespaces)
	}
	if o.authClaim != "permissions" {
		t.Errorf("claim %q", o.authClaim)
	}
}

func TestParseFlagsFull(t *testing.T) {
	env := func(k string) string {
		if k == secretEnv {
			return "s3cret"
		}
		return ""
	}
	o, err := parseFlags([]string{
		"--db-filename", "/tmp/x.db", "--ip", "localhost", "--port", "17233", "--internal-port", "17236", "--ui-port", "18233",
		"--namespace", "oidcflow", "--namespace", "default", "--namespace", "other",
		"--search-attribute", "OidcflowRequester=Keyword", "--search-attribute", "OidcflowCount=int",
		"--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true",
		"--dynamic-config-value", `limit.blobSize.error=1048576`,
		"--dynamic-config-value", `x.y=[{"a":1.5}]`,
		"--log-format", "json", "--log-level", "debug",
		"--auth-jwks-url", "http://127.0.0.1:4444/.well-known/jwks.json", "--auth-issuer", "http://127.0.0.1:4444/",
		"--auth-audience", "temporal", "--auth-permissions-claim", "temporal",
		"--ui-auth-provider-url", "http://127.0.0.1:4444/", "--ui-auth-client-id", "temporal-ui",
		"--ui-auth-callback-url", "http://127.0.0.1:18233/auth/sso/callback",
		"--ui-codec-endpoint", "https://127.0.0.1:8234", "--ui-codec-pass-access-token",
	}, env, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.ip != "127.0.0.1" {
		t.Errorf("ip %q", o.ip)
	}
	if strings.Join(o.namespaces, ",") != "default,oidcflow,other" {
		t.Errorf("namespaces %v", o.namespaces)
	}
	if o.searchAttrs["OidcflowRequester"] != enumspb.INDEXED_VALUE_TYPE_KEYWORD || o.searchAttrs["OidcflowCount"] != enumspb.INDEXED_VALUE_TYPE_INT {
		t.Errorf("search attributes %v", o.searchAttrs)
	}
	if o.dynConfig["frontend.enableUpdateWorkflowExecution"] != true || o.dynConfig["limit.blobSize.error"] != 1048576 {
		t.Errorf("dynamic config %#v", o.dynConfig)
	}
	if v := o.dynConfig["x.y"].([]any)[0].(map[string]any)["a"]; v != 1.5 {
		t.Errorf("nested value %#v", v)
	}
	if !o.authOn() || o.authClaim != "temporal" || !o.uiAuthOn() || o.uiClientSecret != "s3cret" || !o.uiCodecPassToken {
		t.Errorf("auth options %+v", o)
	}
	c := uiConfig(o, "127.0.0.1")
	if c.TemporalGRPCAddress != "127.0.0.1:17233" || !c.Auth.Enabled || c.Auth.Providers[0].ClientSecret != "s3cret" ||
		strings.Join(c.Auth.Providers[0].Scopes, " ") != "openid profile email offline_access" || !c.Codec.PassAccessToken {
		t.Errorf("ui config %+v", c)
	}
}

func TestParseFlagsRefuses(t *testing.T) {
	jwks := []string{"--auth-jwks-url", "http://127.0.0.1:4444/jwks"}
	auth := append(append([]string{}, jwks...), "--auth-issuer", "http://127.0.0.1:4444/", "--auth-audience", "temporal")
	cases := map[string][]string{
		"no db":                     {},
		"positional":                {"--db-filename", "x", "extra"},
		"unknown flag":              {"--db-filename", "x", "--headless"},
		"bad ip":                    {"--db-filename", "x", "--ip", "example.com"},
		"bad port":                  {"--db-filename", "x", "--port", "70000"},
		"port not a number":         {"--db-filename", "x", "--port", "abc"},
		"ui port is port":           {"--db-filename", "x", "--ui-port", "7233"},
		"bad namespace":             {"--db-filename", "x", "--namespace", "a b"},
		"system namespace":          {"--db-filename", "x", "--namespace", "temporal-system"},
		"search attribute no type":  {"--db-filename", "x", "--search-attribute", "Foo"},
		"search attribute type":     {"--db-filename", "x", "--search-attribute", "Foo=Blob"},
		"dynamic config no value":   {"--db-filename", "x", "--dynamic-config-value", "a.b"},
		"dynamic config not json":   {"--db-filename", "x", "--dynamic-config-value", "a.b=yes"},
		"log format":                {"--db-filename", "x", "--log-format", "xml"},
		"log level":                 {"--db-filename", "x", "--log-level", "verbose"},
		"jwks without issuer":       append([]string{"--db-filename", "x", "--auth-audience", "a"}, jwks...),
		"jwks without audience":     append([]string{"--db-filename", "x", "--auth-issuer", "i"}, jwks...),
		"jwks not a url":            {"--db-filename", "x", "--auth-jwks-url", "jwks.json", "--auth-issuer", "i", "--auth-audience", "a"},
		"issuer without jwks":       {"--db-filename", "x", "--auth-issuer", "i"},
		"claim without jwks":        {"--db-filename", "x", "--auth-permissions-claim", "p"},
		"internal port is port":     append([]string{"--db-filename", "x", "--internal-port", "7233"}, auth...),
		"ui login without client":   {"--db-filename", "x", "--ui-auth-provider-url", "http://127.0.0.1:4444/", "--ui-auth-callback-url", "http://127.0.0.1:8233/auth/sso/callback"},
		"ui login without callback": {"--db-filename", "x", "--ui-auth-provider-url", "http://127.0.0.1:4444/", "--ui-auth-client-id", "c"},
		"client id without login":   {"--db-filename", "x", "--ui-auth-client-id", "c"},
		"ui flag without ui":        {"--db-filename", "x", "--ui-port", "0", "--ui-codec-endpoint", "https://127.0.0.1:8234"},
		"pass token over http":      {"--db-filename", "x", "--ui-codec-endpoint", "http://127.0.0.1:8234", "--ui-codec-pass-access-token"},
		"pass token no endpoint":    {"--db-filename", "x", "--ui-codec-pass-access-token"},
	}
	for name, args := range cases {
		if _, err := parseFlags(args, noEnv, &bytes.Buffer{}); err == nil {
			t.Errorf("%s: accepted %q", name, args)
		}
	}
}

func TestRunExitsTwoOnBadFlags(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"--db-filename", "x", "--log-level", "loud"}, noEnv, &stderr); code != 2 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stderr.String(), "--log-level") {
		t.Errorf("message %q", stderr.String())
	}
	if code := run([]string{"-h"}, noEnv, &stderr); code != 0 {
		t.Fatalf("-h exit %d", code)
	}
}
