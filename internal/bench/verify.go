package bench

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/pool"
)

// measureVerification times identity.Verifier.VerifyIDToken on rawIDToken (a real token of
// the stack's IdP, verified against its real keys) with the verified-token cache switched
// off and on, configured as the pool configures it.
func measureVerification(ctx context.Context, env *config.Env, rawIDToken string) (*Verification, error) {
	cfg, err := pool.FromLookup(env.Lookup)
	if err != nil {
		return nil, err
	}
	h, err := identity.ParseHierarchy(cfg.RoleHierarchy)
	if err != nil {
		return nil, err
	}
	claims, err := identity.ClaimsPreset(cfg.Claims, cfg.ClaimsNamespace, cfg.ClientID)
	if err != nil {
		return nil, err
	}
	out := &Verification{Alg: tokenAlg(rawIDToken)}
	for _, cached := range []bool{false, true} {
		o := identity.VerifierOptions{Issuer: cfg.Issuer, ClientID: cfg.ClientID, Leeway: cfg.Leeway, Claims: &claims, Hierarchy: h}
		if !cached {
			o.CacheTTL = -1
		}
		v, err := identity.NewVerifier(ctx, o)
		if err != nil {
			return nil, err
		}
		per, err := timePerOp(func() error { _, err := v.VerifyIDToken(ctx, rawIDToken); return err })
		if err != nil {
			return nil, fmt.Errorf("bench: verify the stack's ID token: %w", err)
		}
		if cached {
			out.CachedMicros = float64(per.Nanoseconds()) / 1e3
		} else {
			out.UncachedMicros = float64(per.Nanoseconds()) / 1e3
		}
	}
	return out, nil
}

// timePerOp runs f once to warm up, then in rounds of doubling size until a round takes half
// a second, and returns the last round's time per call.
func timePerOp(f func() error) (time.Duration, error) {
	if err := f(); err != nil {
		return 0, err
	}
	for n := 1; ; n *= 2 {
		start := time.Now()
		for range n {
			if err := f(); err != nil {
				return 0, err
			}
		}
		if took := time.Since(start); took > 500*time.Millisecond || n >= 1<<24 {
			return took / time.Duration(n), nil
		}
	}
}

// tokenAlg returns the alg of a JWS's header ("" when it cannot be read).
func tokenAlg(raw string) string {
	head, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Alg string `json:"alg"`
	}
	_ = json.Unmarshal(b, &h)
	return h.Alg
}
