package workflows

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
)

// TestInputConfigOnlyTightens: the starter writes the input, so a Config that would let them
// pick their approvers, need fewer, escalate sooner or hold access longer is refused.
func TestInputConfigOnlyTightens(t *testing.T) {
	p := DefaultAccessConfig()
	for name, tc := range map[string]struct {
		change func(*AccessConfig)
		ok     bool
	}{
		"unchanged": {func(*AccessConfig) {}, true},
		"two approvers": {func(c *AccessConfig) {
			c.Routes = map[string]Route{"engineering": {ApproverRole: "db-approver", Required: 2}}
		}, true},
		"shorter timers": {func(c *AccessConfig) {
			c.ExpireAfter, c.EscalateAfter, c.MaxDuration = time.Minute, time.Minute, time.Minute
		}, true},
		"friend's role approves": {func(c *AccessConfig) { c.Routes = map[string]Route{"engineering": {ApproverRole: "engineer"}} }, false},
		"any department": {func(c *AccessConfig) {
			c.Routes = map[string]Route{"engineering": {ApproverRole: "db-approver", AnyDepartment: true}}
		}, false},
		"new department route": {func(c *AccessConfig) { c.Routes = map[string]Route{"sales": {ApproverRole: "db-approver"}} }, false},
		"fallback route":       {func(c *AccessConfig) { c.Fallback = &Route{ApproverRole: "engineer"} }, false},
		"other escalation role": {func(c *AccessConfig) {
			c.Routes = map[string]Route{"engineering": {ApproverRole: "db-approver", EscalationRole: "engineer"}}
		}, false},
		"other admin role":    {func(c *AccessConfig) { c.AdminRole = "engineer" }, false},
		"longer max duration": {func(c *AccessConfig) { c.MaxDuration = 48 * time.Hour }, false},
		"longer expiry":       {func(c *AccessConfig) { c.ExpireAfter = 48 * time.Hour }, false},
		"escalate sooner":     {func(c *AccessConfig) { c.EscalateAfter = time.Minute }, false},
	} {
		c := DefaultAccessConfig()
		tc.change(&c)
		err := c.withDefaults().tighterThan(p)
		var app *temporal.ApplicationError
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: refused: %v", name, err)
		case !tc.ok && (!errors.As(err, &app) || app.Type() != TypeLooserRules || !app.NonRetryable()):
			t.Errorf("%s: got %v, want a non-retryable %s", name, err, TypeLooserRules)
		}
	}

	ip := DefaultInvoiceConfig()
	for name, tc := range map[string]struct {
		c  InvoiceConfig
		ok bool
	}{
		"lower threshold":  {InvoiceConfig{SecondApproverAboveCents: 100}, true},
		"higher threshold": {InvoiceConfig{SecondApproverAboveCents: ip.SecondApproverAboveCents * 100}, false},
		"other permission": {InvoiceConfig{Permission: "can_request_access"}, false},
		"other finance":    {InvoiceConfig{FinanceDepartment: "engineering"}, false},
		"longer expiry":    {InvoiceConfig{ExpireAfter: 30 * 24 * time.Hour}, false},
	} {
		if err := tc.c.withDefaults().tighterThan(ip); (err == nil) != tc.ok {
			t.Errorf("invoice %s: %v", name, err)
		}
	}
}

// TestTighterThanNamesTheFirstDepartment: with several loosened routes, the refusal names
// the first department in order every time, so a replay of the run fails with the same
// message as the run did.
func TestTighterThanNamesTheFirstDepartment(t *testing.T) {
	p, c := DefaultAccessConfig(), DefaultAccessConfig()
	p.Routes, c.Routes = map[string]Route{}, map[string]Route{}
	for _, dept := range []string{"finance", "engineering", "sales", "legal", "ops"} {
		p.Routes[dept] = Route{ApproverRole: "db-approver", Required: 2}
		c.Routes[dept] = Route{ApproverRole: "db-approver", Required: 1}
	}
	for range 50 {
		err := c.withDefaults().tighterThan(p)
		requireRefused(t, err, TypeLooserRules)
		if !strings.Contains(err.Error(), `"engineering"`) {
			t.Fatalf("the refusal names another department: %v", err)
		}
	}
}
