package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/workflows"
)

// WhoamiJSON is the --json output of `starter whoami`.
type WhoamiJSON struct {
	Identity *identity.Identity `json:"identity"` // verified claims of the ID token
	Session  SessionJSON        `json:"session"`
	Policies []PolicyJSON       `json:"policies"`
}

// SessionJSON describes the cached session without its tokens.
type SessionJSON struct {
	Cache             string    `json:"cache"`
	ClientID          string    `json:"client_id"`
	AccessTokenExpiry time.Time `json:"access_token_expiry"`
	IDTokenExpiry     time.Time `json:"id_token_expiry"`
	RefreshToken      bool      `json:"refresh_token"` // a refresh token is cached (never shown)
	Scope             string    `json:"scope,omitempty"`
}

// PolicyJSON is one policy of the workflows' default configuration and whether the identity
// satisfies it; Reason is the denial text when it does not.
type PolicyJSON struct {
	Name    string `json:"name"`
	Policy  string `json:"policy"`
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason,omitempty"`
}

func (r *runner) whoami(ctx context.Context, args []string) error {
	fs := r.flags("whoami", "")
	if _, err := parse(fs, args, 0, ""); err != nil {
		return err
	}
	ts, v, err := r.tokenSource(ctx)
	if err != nil {
		return err
	}
	s, err := ts.Session()
	if err != nil {
		return err
	}
	id, err := v.VerifyIDToken(ctx, s.IDToken)
	if err != nil {
		return fmt.Errorf("the cached ID token did not verify (%w); run `starter login`", err)
	}
	c, _ := r.cache()
	out := WhoamiJSON{
		Identity: id,
		Session: SessionJSON{Cache: c.Path(), ClientID: s.ClientID, AccessTokenExpiry: s.Expiry.UTC(),
			IDTokenExpiry: s.IDTokenExpiry.UTC(), RefreshToken: s.RefreshToken != "", Scope: s.Scope},
		Policies: Policies(id),
	}
	return r.emit(out, func(w io.Writer) {
		row := func(k, v string) {
			if v != "" {
				fmt.Fprintf(w, "%s\t%s\n", k, v)
			}
		}
		list := func(ss []string) string {
			if len(ss) == 0 {
				return "(none)"
			}
			return strings.Join(ss, ", ")
		}
		row("Subject", id.Subject)
		row("Issuer", id.Issuer)
		row("Name", id.Name)
		row("Email", id.Email)
		row("Department", id.Department)
		row("Roles", list(id.Roles))
		row("Permissions", list(id.Permissions))
		row("Groups", list(id.Groups))
		row("Client", id.ClientID)
		row("Expires", fmt.Sprintf("%s (in %s; refreshed automatically: %t)", id.Expiry.Local().Format(time.RFC3339),
			id.Expiry.Sub(r.now()).Round(time.Second), out.Session.RefreshToken))
		row("Session", out.Session.Cache)
		fmt.Fprintln(w, "\nPolicies:")
		for _, p := range out.Policies {
			mark := "yes"
			if !p.Allowed {
				mark = "no"
			}
			line := fmt.Sprintf("  %s\t%s", mark, p.Name)
			if p.Reason != "" {
				line += "\t" + p.Reason
			}
			fmt.Fprintln(w, line)
		}
	})
}

// Policies evaluates the rules of the workflows' default configuration
// (workflows.DefaultAccessConfig, workflows.DefaultInvoiceConfig) against id. Rules that
// depend on the request (no self-approval, the requester's department) are shown per
// department.
func Policies(id *identity.Identity) []PolicyJSON {
	ac := workflows.DefaultAccessConfig()
	ic := workflows.DefaultInvoiceConfig()
	type named struct {
		name string
		p    identity.Policy
	}
	var ps []named
	depts := make([]string, 0, len(ac.Routes))
	for d := range ac.Routes {
		depts = append(depts, d)
	}
	slices.Sort(depts)
	reqs := make([]identity.Policy, 0, len(depts))
	for _, d := range depts {
		reqs = append(reqs, identity.InDepartment(d))
	}
	if ac.Fallback == nil {
		ps = append(ps, named{"request access (your department has an approval route)", identity.Any(reqs...)})
	}
	for _, d := range depts {
		rt := ac.Routes[d]
		p := identity.HasRole(rt.ApproverRole)
		if !rt.AnyDepartment {
			p = identity.All(p, identity.InDepartment(d))
		}
		ps = append(ps, named{fmt.Sprintf("approve or deny access requests from %s", d), p})
	}
	ps = append(ps,
		named{"approve or deny escalated access requests", identity.HasRole(ac.AdminRole)},
		named{"revoke anyone's access request (admin)", identity.HasRole(ac.AdminRole)},
		named{"approve invoices", identity.HasPermission(ic.Permission)},
		named{"run admin tasks", identity.HasRole("admin")},
	)
	out := make([]PolicyJSON, 0, len(ps))
	for _, n := range ps {
		pj := PolicyJSON{Name: n.name, Policy: fmt.Sprint(n.p), Allowed: true}
		if err := n.p.Check(id); err != nil {
			pj.Allowed = false
			pj.Reason = strings.TrimPrefix(err.Error(), "identity: ")
		}
		out = append(out, pj)
	}
	return out
}
