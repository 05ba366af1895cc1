package bench

import (
	"context"
	"net/http"
	"strings"
	"sync"

	vault "github.com/hashicorp/vault/api"
)

// Names of the request counters a worker reports (Stats.Counters).
const (
	VaultRead   = "vault_read"   // GET of a secret or its metadata
	VaultWrite  = "vault_write"  // PUT, POST or PATCH
	VaultDelete = "vault_delete" // DELETE
	VaultList   = "vault_list"   // LIST
	VaultAuth   = "vault_auth"   // logins and token renewals (auth/...)
	VaultOther  = "vault_other"  // sys/... and anything else

	IdPToken     = "idp_token"     // token endpoint: refresh grants
	IdPRevoke    = "idp_revoke"    // RFC 7009 revocation
	IdPJWKS      = "idp_jwks"      // key set fetches
	IdPDiscovery = "idp_discovery" // discovery documents
	IdPUserinfo  = "idp_userinfo"  // userinfo (a refresh without an ID token)
	IdPOther     = "idp_other"     // any other HTTP request of the worker
)

// vaultCounters and idpCounters list the counters of each kind, in report order.
var (
	vaultCounters = []string{VaultRead, VaultWrite, VaultDelete, VaultList, VaultAuth, VaultOther}
	idpCounters   = []string{IdPToken, IdPRevoke, IdPJWKS, IdPDiscovery, IdPUserinfo, IdPOther}
)

// Counters counts requests by name. It is safe for concurrent use.
type Counters struct {
	mu sync.Mutex
	n  map[string]float64
}

// NewCounters returns Counters with every known counter at zero.
func NewCounters() *Counters {
	c := &Counters{n: map[string]float64{}}
	for _, k := range append(append([]string{}, vaultCounters...), idpCounters...) {
		c.n[k] = 0
	}
	return c
}

// Add adds one to name.
func (c *Counters) Add(name string) {
	c.mu.Lock()
	c.n[name]++
	c.mu.Unlock()
}

// Snapshot returns a copy of the counts.
func (c *Counters) Snapshot() map[string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]float64, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// CountingTransport counts every request it sends by the identity provider endpoint its path
// names, then hands it to Next (default http.DefaultTransport as it was when it was made).
// It reads only the method and the path, never a header or a body.
type CountingTransport struct {
	Next     http.RoundTripper
	Counters *Counters
}

func (t *CountingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.Counters.Add(idpKind(req.URL.Path))
	return t.Next.RoundTrip(req)
}

// idpKind classifies an identity provider request by its path.
func idpKind(path string) string {
	switch {
	case strings.HasSuffix(path, "/token"):
		return IdPToken
	case strings.HasSuffix(path, "/revoke"):
		return IdPRevoke
	case strings.Contains(path, "jwks"):
		return IdPJWKS
	case strings.Contains(path, "openid-configuration"):
		return IdPDiscovery
	case strings.Contains(path, "userinfo"):
		return IdPUserinfo
	}
	return IdPOther
}

// CountVault makes c count every request it sends, retries included, by kind. It wraps the
// client's retry check, which the Vault client calls once for every request it sent with
// what came back; clones made later (logins) keep counting, clones made before do not.
func CountVault(c *vault.Client, counters *Counters) {
	next := c.CheckRetry()
	if next == nil {
		next = vault.DefaultRetryPolicy
	}
	c.SetCheckRetry(func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if resp != nil && resp.Request != nil {
			counters.Add(vaultKind(resp.Request))
		} else {
			counters.Add(VaultOther)
		}
		return next(ctx, resp, err)
	})
}

// vaultKind classifies a Vault request by its method and path.
func vaultKind(req *http.Request) string {
	path := strings.TrimPrefix(req.URL.Path, "/v1/")
	switch {
	case strings.HasPrefix(path, "auth/"):
		return VaultAuth
	case strings.HasPrefix(path, "sys/"):
		return VaultOther
	}
	switch req.Method {
	case http.MethodGet:
		if req.URL.Query().Get("list") == "true" {
			return VaultList
		}
		return VaultRead
	case "LIST":
		return VaultList
	case http.MethodPut, http.MethodPost, http.MethodPatch:
		return VaultWrite
	case http.MethodDelete:
		return VaultDelete
	}
	return VaultOther
}
