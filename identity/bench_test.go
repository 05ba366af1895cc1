package identity

import (
	"context"
	"testing"
)

func BenchmarkVerifyIDToken(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		key := newKey(b, alg, "k1")
		p := newIDP(b, key)
		raw := key.sign(b, nil, p.claims())
		for _, mode := range []struct {
			name string
			ttl  int
		}{{"uncached", -1}, {"cached", 0}} {
			b.Run(alg+"/"+mode.name, func(b *testing.B) {
				v := p.verifier(b, func(o *VerifierOptions) {
					if mode.ttl < 0 {
						o.CacheTTL = -1
					}
				})
				ctx := context.Background()
				if _, err := v.VerifyIDToken(ctx, raw); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := v.VerifyIDToken(ctx, raw); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkPolicy(b *testing.B) {
	id := &Identity{Subject: "dave", Roles: []string{"employee", "finance-approver", "viewer"},
		Permissions: []string{"can_approve_invoice"}, Department: "finance"}
	allow := All(AnyRole("admin", "finance-approver"), HasPermission("can_approve_invoice"), SameDepartment("finance"), Not(HasRole("contractor")))
	deny := All(AnyRole("admin", "db-approver"), HasPermission("can_approve_invoice"))
	b.Run("allow", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if allow.Check(id) != nil {
				b.Fatal("denied")
			}
		}
	})
	b.Run("deny", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if deny.Check(id) == nil {
				b.Fatal("allowed")
			}
		}
	})
	b.Run("expand-hierarchy", func(b *testing.B) {
		h := Hierarchy{RoleImplies: map[string][]string{"admin": {"db-approver", "finance-approver"}, "db-approver": {"engineer"}, "engineer": {"viewer"}},
			GroupImplies: map[string][]string{"sre": {"engineer"}}}
		b.ReportAllocs()
		for b.Loop() {
			h.Expand([]string{"admin"}, []string{"sre"})
		}
	})
}
