package pool

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/oidcflow/oidcflow/internal/devstack"
)

// policyLines returns the Vault policy rules in text, whitespace collapsed, sorted.
func policyLines(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "//"))
		if strings.HasPrefix(line, `path "`) {
			out = append(out, strings.Join(strings.Fields(line), " "))
		}
	}
	slices.Sort(out)
	return out
}

// TestDocumentedPolicyIsTheDevStacks: the worker policy the package documentation and the
// README show is the one the dev stack gives its workers (which the integration tests run under), less the
// rules of its Transit key VaultTransitKey, which the pool does not use (it uses the payload
// Transit key, VaultPayloadTransitKey, whose rules are shown).
func TestDocumentedPolicyIsTheDevStacks(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var dev []string
	for _, l := range policyLines(devstack.WorkerPolicy()) {
		if !strings.HasSuffix(strings.Fields(l)[1], "/"+devstack.VaultTransitKey+`"`) {
			dev = append(dev, l)
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"package pool's documentation": string(doc), "the README": string(readme)} {
		if got := policyLines(text); !slices.Equal(got, dev) {
			t.Errorf("the policy in %s:\n%s\ndev stack's:\n%s", name, strings.Join(got, "\n"), strings.Join(dev, "\n"))
		}
	}
	if devstack.VaultPayloadTransitKey != defaultOf("OIDCFLOW_PAYLOAD_TRANSIT_KEY") || devstack.VaultKVMount != "oidcflow" || devstack.VaultEnvelopeKeysPath != defaultOf("OIDCFLOW_ENVELOPE_KEYS_PATH") {
		t.Error("the documented layout's mount or key path is not the dev stack's")
	}
}
