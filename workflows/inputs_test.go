package workflows

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
)

// The starter of a run writes its whole input, and anyone who can start workflows can write
// any input. So no input field may decide who is authorized, who approves, or how long
// access or a session is kept, except to tighten the policy or within fixed bounds. This
// file classifies every field of every shipped workflow's input and proves each class with
// a case; a field added without a classification fails TestEveryInputFieldIsClassified.

// inputClass says how an input field can bear on authorization, approval or retention.
type inputClass string

const (
	// noEffect: the field is shown, recorded or counted, and decides nothing.
	noEffect inputClass = "no effect"
	// tightenOnly: the field may only make the policy stricter; a looser value is refused
	// with TypeLooserRules.
	tightenOnly inputClass = "tighten-only"
	// bounded: the field is validated against fixed bounds (a set, a range, a length); a
	// value outside is refused with activities.TypeInvalidInput.
	bounded inputClass = "bounded"
)

// fieldRule classifies one input field and proves it.
type fieldRule struct {
	class inputClass
	proof func(t *testing.T)
}

// shippedInputs are the input types of the workflows a worker registers.
var shippedInputs = []any{
	AccessRequestInput{}, InvoiceApprovalInput{}, AdminTaskInput{}, KeepAliveInput{}, SweeperInput{},
}

// inputFields returns the path of every field reachable from t: nested structs, pointers,
// map values ("[]") and slice elements ("[]"); time.Time is a leaf.
func inputFields(t reflect.Type, prefix string) []string {
	var out []string
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Map || t.Kind() == reflect.Slice {
		if t.Kind() != reflect.Pointer {
			prefix += "[]"
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[time.Time]() {
		return nil
	}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		path := prefix + "." + f.Name
		out = append(out, path)
		out = append(out, inputFields(f.Type, path)...)
	}
	return out
}

func TestEveryInputFieldIsClassified(t *testing.T) {
	var fields []string
	for _, in := range shippedInputs {
		typ := reflect.TypeOf(in)
		fields = append(fields, inputFields(typ, typ.Name())...)
	}
	for _, f := range fields {
		if _, ok := inputRules[f]; !ok {
			t.Errorf("input field %s is not classified: add it to inputRules as %q, %q or %q with a case that proves it",
				f, noEffect, tightenOnly, bounded)
		}
	}
	for f := range inputRules {
		if !slices.Contains(fields, f) {
			t.Errorf("inputRules classifies %s, which is no input field any more", f)
		}
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range inputRules {
			if !yield(k) {
				return
			}
		}
	})
	for _, f := range keys {
		r := inputRules[f]
		t.Run(f+" is "+string(r.class), r.proof)
	}
}

// inputRules classifies every field of shippedInputs.
var inputRules = map[string]fieldRule{
	// AccessRequestInput: what is asked for, within fixed bounds.
	"AccessRequestInput.Resource": {bounded, func(t *testing.T) {
		for _, r := range []string{`demo"; DROP ROLE x; --`, strings.Repeat("a", 41), "Demo", ""} {
			in := readDemo(time.Hour)
			in.Resource = r
			requireRefused(t, startAccess(t, in), activities.TypeInvalidInput)
		}
	}},
	"AccessRequestInput.Role": {bounded, func(t *testing.T) {
		in := readDemo(time.Hour)
		in.Role = "owner"
		requireRefused(t, startAccess(t, in), activities.TypeInvalidInput)
	}},
	"AccessRequestInput.Duration": {bounded, func(t *testing.T) {
		for _, d := range []time.Duration{0, -time.Hour, DefaultAccessConfig().MaxDuration + time.Nanosecond} {
			requireRefused(t, startAccess(t, readDemo(d)), activities.TypeInvalidInput)
		}
		in := readDemo(2 * time.Hour)
		cfg := DefaultAccessConfig()
		cfg.MaxDuration = time.Hour
		in.Config = &cfg
		requireRefused(t, startAccess(t, in), activities.TypeInvalidInput)
	}},
	"AccessRequestInput.Reason": {noEffect, func(t *testing.T) {
		// Shown to approvers; required and at most maxComment bytes.
		for _, r := range []string{"", strings.Repeat("x", maxComment+1)} {
			in := readDemo(time.Hour)
			in.Reason = r
			requireRefused(t, startAccess(t, in), activities.TypeInvalidInput)
		}
	}},
	"AccessRequestInput.Config": {tightenOnly, func(t *testing.T) {
		in := readDemo(time.Hour)
		cfg := DefaultAccessConfig()
		in.Config = &cfg
		require.NoError(t, startAccess(t, in), "the policy itself is accepted")
		cfg.Routes = map[string]Route{"engineering": {ApproverRole: "engineer"}}
		requireRefused(t, startAccess(t, in), TypeLooserRules)
	}},
	"AccessRequestInput.Config.Routes": {tightenOnly, func(t *testing.T) {
		requireLooser(t, func(c *AccessConfig) { c.Routes = map[string]Route{"sales": {ApproverRole: "db-approver"}} })
		requireLooser(t, func(c *AccessConfig) {
			c.Routes = map[string]Route{"engineering": {ApproverRole: "db-approver"}, "sales": {ApproverRole: "db-approver"}}
		})
		requireTighter(t, func(c *AccessConfig) { c.Routes = map[string]Route{"engineering": {ApproverRole: "db-approver"}} })
		// An empty map is no map in the input (JSON omits it): the policy's routes apply.
	}},
	"AccessRequestInput.Config.Routes[].ApproverRole": {tightenOnly, func(t *testing.T) {
		requireLooser(t, func(c *AccessConfig) { c.Routes = map[string]Route{"engineering": {ApproverRole: "engineer"}} })
	}},
	"AccessRequestInput.Config.Routes[].AnyDepartment": {tightenOnly, func(t *testing.T) {
		requireLooser(t, func(c *AccessConfig) {
			c.Routes = map[string]Route{"engineering": {ApproverRole: "db-approver", AnyDepartment: true}}
		})
	}},
	"AccessRequestInput.Config.Routes[].Required": {tightenOnly, func(t *testing.T) {
		requireTighter(t, func(c *AccessConfig) {
			c.Routes = map[string]Route{"engineering": {ApproverRole: "db-approver", Required: 3}}
		})
		p := DefaultAccessConfig()
		p.Routes = map[string]Route{"engineering": {ApproverRole: "db-approver", Required: 2}}
		for _, n := range []int{1, 0, -5} {
			c := p
			c.Routes = map[string]Route{"engineering": {ApproverRole: "db-approver", Required: n}}
			requireRefused(t, c.withDefaults().tighterThan(p), TypeLooserRules)
		}
	}},
	"AccessRequestInput.Config.Routes[].EscalationRole": {tightenOnly, func(t *testing.T) {
		requireLooser(t, func(c *AccessConfig) {
			c.Routes = map[string]Route{"engineering": {ApproverRole: "db-approver", EscalationRole: "engineer"}}
		})
	}},
	"AccessRequestInput.Config.Fallback": {tightenOnly, func(t *testing.T) {
		requireLooser(t, func(c *AccessConfig) { c.Fallback = &Route{ApproverRole: "db-approver"} })
	}},
	"AccessRequestInput.Config.Fallback.ApproverRole": {tightenOnly, func(t *testing.T) {
		p := DefaultAccessConfig()
		p.Fallback = &Route{ApproverRole: "db-approver"}
		c := p
		c.Fallback = &Route{ApproverRole: "engineer"}
		requireRefused(t, c.withDefaults().tighterThan(p), TypeLooserRules)
	}},
	"AccessRequestInput.Config.Fallback.AnyDepartment": {tightenOnly, func(t *testing.T) {
		p := DefaultAccessConfig()
		p.Fallback = &Route{ApproverRole: "db-approver"}
		c := p
		c.Fallback = &Route{ApproverRole: "db-approver", AnyDepartment: true}
		requireRefused(t, c.withDefaults().tighterThan(p), TypeLooserRules)
	}},
	"AccessRequestInput.Config.Fallback.Required": {tightenOnly, func(t *testing.T) {
		p := DefaultAccessConfig()
		p.Fallback = &Route{ApproverRole: "db-approver", Required: 2}
		c := p
		c.Fallback = &Route{ApproverRole: "db-approver", Required: 1}
		requireRefused(t, c.withDefaults().tighterThan(p), TypeLooserRules)
	}},
	"AccessRequestInput.Config.Fallback.EscalationRole": {tightenOnly, func(t *testing.T) {
		p := DefaultAccessConfig()
		p.Fallback = &Route{ApproverRole: "db-approver"}
		c := p
		c.Fallback = &Route{ApproverRole: "db-approver", EscalationRole: "engineer"}
		requireRefused(t, c.withDefaults().tighterThan(p), TypeLooserRules)
	}},
	"AccessRequestInput.Config.AdminRole": {tightenOnly, func(t *testing.T) {
		requireLooser(t, func(c *AccessConfig) { c.AdminRole = "engineer" })
	}},
	"AccessRequestInput.Config.EscalateAfter": {tightenOnly, func(t *testing.T) {
		requireLooser(t, func(c *AccessConfig) { c.EscalateAfter = time.Minute })
		requireLooser(t, func(c *AccessConfig) { c.EscalateAfter = -time.Hour })
		requireTighter(t, func(c *AccessConfig) { c.EscalateAfter = 2 * time.Hour })
	}},
	"AccessRequestInput.Config.ExpireAfter": {tightenOnly, func(t *testing.T) {
		requireLooser(t, func(c *AccessConfig) { c.ExpireAfter = 48 * time.Hour })
		requireTighter(t, func(c *AccessConfig) { c.ExpireAfter = time.Hour })
		in := readDemo(time.Hour)
		cfg := DefaultAccessConfig()
		cfg.ExpireAfter = -time.Hour
		in.Config = &cfg
		requireRefused(t, startAccess(t, in), activities.TypeInvalidInput)
	}},
	"AccessRequestInput.Config.MaxDuration": {tightenOnly, func(t *testing.T) {
		requireLooser(t, func(c *AccessConfig) { c.MaxDuration = 48 * time.Hour })
		requireTighter(t, func(c *AccessConfig) { c.MaxDuration = time.Hour })
	}},
	// Deprecated; only a hold an earlier release began replays its ticks.
	"AccessRequestInput.Config.KeepAliveEvery": {noEffect, keepAliveEveryHasNoEffect},

	// InvoiceApprovalInput: what is submitted, within fixed bounds.
	"InvoiceApprovalInput.InvoiceID": {bounded, func(t *testing.T) {
		for _, id := range []string{"", strings.Repeat("i", 101)} {
			in := invoice(100)
			in.InvoiceID = id
			requireRefused(t, startInvoice(t, in), activities.TypeInvalidInput)
		}
	}},
	"InvoiceApprovalInput.Vendor": {noEffect, func(t *testing.T) {
		in := invoice(100)
		in.Vendor = strings.Repeat("v", maxComment+1)
		requireRefused(t, startInvoice(t, in), activities.TypeInvalidInput)
	}},
	"InvoiceApprovalInput.AmountCents": {bounded, func(t *testing.T) {
		// Positive; above the policy's threshold it needs a second approver, never fewer.
		for _, c := range []int64{0, -1} {
			requireRefused(t, startInvoice(t, invoice(c)), activities.TypeInvalidInput)
		}
	}},
	"InvoiceApprovalInput.Currency": {bounded, func(t *testing.T) {
		in := invoice(100)
		in.Currency = "EURO"
		requireRefused(t, startInvoice(t, in), activities.TypeInvalidInput)
	}},
	"InvoiceApprovalInput.Description": {noEffect, func(t *testing.T) {
		in := invoice(100)
		in.Description = strings.Repeat("d", maxComment+1)
		requireRefused(t, startInvoice(t, in), activities.TypeInvalidInput)
	}},
	"InvoiceApprovalInput.Config": {tightenOnly, func(t *testing.T) {
		in := invoice(100)
		in.Config = &InvoiceConfig{Permission: "can_request_access"}
		requireRefused(t, startInvoice(t, in), TypeLooserRules)
	}},
	"InvoiceApprovalInput.Config.Permission": {tightenOnly, func(t *testing.T) {
		requireRefused(t, InvoiceConfig{Permission: "can_request_access"}.withDefaults().tighterThan(DefaultInvoiceConfig()), TypeLooserRules)
	}},
	"InvoiceApprovalInput.Config.SecondApproverAboveCents": {tightenOnly, func(t *testing.T) {
		p := DefaultInvoiceConfig()
		requireRefused(t, InvoiceConfig{SecondApproverAboveCents: p.SecondApproverAboveCents + 1}.withDefaults().tighterThan(p), TypeLooserRules)
		require.NoError(t, InvoiceConfig{SecondApproverAboveCents: 1}.withDefaults().tighterThan(p))
	}},
	"InvoiceApprovalInput.Config.FinanceDepartment": {tightenOnly, func(t *testing.T) {
		requireRefused(t, InvoiceConfig{FinanceDepartment: "sales"}.withDefaults().tighterThan(DefaultInvoiceConfig()), TypeLooserRules)
	}},
	"InvoiceApprovalInput.Config.ExpireAfter": {tightenOnly, func(t *testing.T) {
		requireRefused(t, InvoiceConfig{ExpireAfter: 30 * 24 * time.Hour}.withDefaults().tighterThan(DefaultInvoiceConfig()), TypeLooserRules)
		in := invoice(100)
		in.Config = &InvoiceConfig{ExpireAfter: -time.Hour}
		requireRefused(t, startInvoice(t, in), activities.TypeInvalidInput)
	}},

	// AdminTaskInput: which task; the role it needs is the worker's configuration.
	"AdminTaskInput.Task": {bounded, func(t *testing.T) {
		env, _ := newEnv(t, "alice")
		env.ExecuteWorkflow(AdminTask, AdminTaskInput{Task: "drop-everything"})
		requireRefused(t, env.GetWorkflowError(), activities.TypeInvalidInput)
	}},

	// KeepAliveInput: how long the pool keeps the starter's session alive, and how often
	// it wakes, are capped; the history of one run is capped.
	"KeepAliveInput.Until": {bounded, func(t *testing.T) {
		requireRefused(t, startKeepAlive(t, func(in *KeepAliveInput, _ time.Time) { in.Until = time.Time{} }), activities.TypeInvalidInput)
		requireRefused(t, startKeepAlive(t, func(in *KeepAliveInput, now time.Time) {
			in.Until = now.Add(KeepAliveMaxSpan + time.Hour)
		}), activities.TypeInvalidInput)
		require.NoError(t, startKeepAlive(t, func(in *KeepAliveInput, now time.Time) { in.Until = now.Add(KeepAliveMaxSpan) }))
	}},
	"KeepAliveInput.Every": {bounded, func(t *testing.T) {
		for _, d := range []time.Duration{time.Nanosecond, time.Second, -time.Hour} {
			requireRefused(t, startKeepAlive(t, func(in *KeepAliveInput, _ time.Time) { in.Every = d }), activities.TypeInvalidInput)
		}
		require.NoError(t, startKeepAlive(t, func(in *KeepAliveInput, _ time.Time) { in.Every = KeepAliveMinEvery }))
	}},
	"KeepAliveInput.RefreshesPerRun": {bounded, func(t *testing.T) {
		for _, n := range []int{KeepAliveMaxRefreshesPerRun + 1, 1 << 30, -1} {
			requireRefused(t, startKeepAlive(t, func(in *KeepAliveInput, _ time.Time) { in.RefreshesPerRun = n }), activities.TypeInvalidInput)
		}
	}},
	"KeepAliveInput.Progress":            {noEffect, keepAliveCountersOnlyReported},
	"KeepAliveInput.Progress.Ticks":      {noEffect, keepAliveCountersOnlyReported},
	"KeepAliveInput.Progress.Refreshes":  {noEffect, keepAliveCountersOnlyReported},
	"KeepAliveInput.Progress.Runs":       {noEffect, keepAliveCountersOnlyReported},
	"KeepAliveInput.Progress.Reconsents": {noEffect, keepAliveCountersOnlyReported},

	// SweeperInput has no fields: TestEveryInputFieldIsClassified fails when one is added.
}

// keepAliveCountersOnlyReported: the counters a run carries over continue-as-new are added
// to and reported, nothing else: a run started with huge counters refreshes and ends as one
// started with none.
func keepAliveCountersOnlyReported(t *testing.T) {
	var plain, forged KeepAliveResult
	require.NoError(t, startKeepAliveResult(t, func(*KeepAliveInput, time.Time) {}, &plain))
	big := KeepAliveResult{Ticks: 1 << 40, Refreshes: 1 << 40, Runs: 1 << 40, Reconsents: 1 << 40}
	require.NoError(t, startKeepAliveResult(t, func(in *KeepAliveInput, _ time.Time) { in.Progress = big }, &forged))
	require.Equal(t, KeepAliveResult{
		Ticks: big.Ticks + plain.Ticks, Refreshes: big.Refreshes + plain.Refreshes,
		Runs: big.Runs + plain.Runs, Reconsents: big.Reconsents + plain.Reconsents,
	}, forged)
}

func requireRefused(t *testing.T, err error, typ string) {
	t.Helper()
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	require.Equal(t, typ, app.Type(), "%v", err)
	require.True(t, app.NonRetryable())
}

// requireLooser: the change to the default policy is refused as looser.
func requireLooser(t *testing.T, change func(*AccessConfig)) {
	t.Helper()
	c := DefaultAccessConfig()
	change(&c)
	requireRefused(t, c.withDefaults().tighterThan(DefaultAccessConfig()), TypeLooserRules)
}

// requireTighter: the change to the default policy is accepted.
func requireTighter(t *testing.T, change func(*AccessConfig)) {
	t.Helper()
	c := DefaultAccessConfig()
	change(&c)
	require.NoError(t, c.withDefaults().tighterThan(DefaultAccessConfig()))
}

// startAccess runs an AccessRequest for bob with in; with nobody deciding, an accepted
// request expires, so the run's error is the refusal of its input, if any.
func startAccess(t *testing.T, in AccessRequestInput) error {
	t.Helper()
	env, _ := newEnv(t, "bob")
	mockDB(env, &dbMock{})
	env.ExecuteWorkflow(AccessRequest, in)
	require.True(t, env.IsWorkflowCompleted())
	return env.GetWorkflowError()
}

// startInvoice runs an InvoiceApproval submitted by bob with in.
func startInvoice(t *testing.T, in InvoiceApprovalInput) error {
	t.Helper()
	env, _ := newEnv(t, "bob")
	env.ExecuteWorkflow(InvoiceApproval, in)
	require.True(t, env.IsWorkflowCompleted())
	return env.GetWorkflowError()
}

// startKeepAlive runs a KeepAlive for bob, for one hour every 20 minutes unless change
// says otherwise (now is the run's start).
func startKeepAlive(t *testing.T, change func(in *KeepAliveInput, now time.Time)) error {
	t.Helper()
	var res KeepAliveResult
	return startKeepAliveResult(t, change, &res)
}

func startKeepAliveResult(t *testing.T, change func(in *KeepAliveInput, now time.Time), res *KeepAliveResult) error {
	t.Helper()
	env, _ := newEnv(t, "bob")
	env.RegisterWorkflowWithOptions(KeepAlive, workflow.RegisterOptions{Name: KeepAliveWorkflow})
	var s *activities.SessionActivities
	env.RegisterActivity(s)
	env.OnActivity(s.RefreshSession, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, _ activities.RefreshSessionInput) (activities.RefreshSessionResult, error) {
			if _, err := identity.FromActivity(ctx); err != nil {
				return activities.RefreshSessionResult{}, err
			}
			return activities.RefreshSessionResult{Refreshed: true}, nil
		}).Maybe()
	in := KeepAliveInput{Until: env.Now().Add(time.Hour), Every: 20 * time.Minute}
	change(&in, env.Now())
	env.ExecuteWorkflow(KeepAliveWorkflow, in)
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if errors.As(err, &can) {
		return nil // accepted: the run ran its refreshes and continued as new
	}
	if err != nil {
		return err
	}
	return env.GetWorkflowResult(res)
}
