package interceptors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors/envelope"
)

// fakeAuth treats an "envelope" as the JSON of a fakeSealed: the identity it proves and the
// binding it was sealed for. Sessions live in a map.
type fakeAuth struct {
	mu       sync.Mutex
	sessions map[string]*identity.Identity
	ended    []string
	resumes  int
	spent    map[string]string
}

type fakeSealed struct {
	ID      identity.Identity
	Binding envelope.Binding
}

func seal(t *testing.T, id identity.Identity, b envelope.Binding) []byte {
	t.Helper()
	raw, err := json.Marshal(fakeSealed{id, b})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (f *fakeAuth) Open(_ context.Context, op Operation, sealed []byte) (*identity.Identity, error) {
	var s fakeSealed
	if err := json.Unmarshal(sealed, &s); err != nil {
		return nil, envelope.ErrMalformed
	}
	b, holder := op.Binding, op.Holder
	if s.Binding != b {
		return nil, envelope.ErrOpen
	}
	id := s.ID
	if holder != "" {
		f.mu.Lock()
		defer f.mu.Unlock()
		id.SessionID = "s-" + id.Subject + "-" + b.Operation
		f.sessions[id.SessionID] = &id
	}
	return &id, nil
}

func (f *fakeAuth) Resume(_ context.Context, sid string) (*identity.Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resumes++
	id, ok := f.sessions[sid]
	if !ok {
		return nil, identity.ErrReauthRequired
	}
	c := *id
	return &c, nil
}

func (f *fakeAuth) Spend(_ context.Context, id, owner string, _ time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.spent == nil {
		f.spent = map[string]string{}
	}
	if o, ok := f.spent[id]; ok && o != owner {
		return ErrReplayedEnvelope
	}
	f.spent[id] = owner
	return nil
}

func (f *fakeAuth) SpendEnvelope(context.Context, Operation, []byte) error { return nil }

func (f *fakeAuth) End(_ context.Context, sid, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended = append(f.ended, sid)
	delete(f.sessions, sid)
	return nil
}

var secret = []byte("0123456789abcdef0123456789abcdef")

func newEnv(t *testing.T, auth Authenticator, anonymous ...string) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	wi, err := NewWorkerInterceptor(WorkerOptions{Authenticator: auth, PropagationSecrets: [][]byte{secret}, AllowAnonymous: anonymous})
	if err != nil {
		t.Fatal(err)
	}
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{wi}})
	env.RegisterActivity(&activities.SessionActivities{Sessions: auth}) // EndSessionActivity
	return env
}

func startHeader(t *testing.T, env *testsuite.TestWorkflowEnvironment, id identity.Identity, wfID string) {
	t.Helper()
	p, err := headerConverter.ToPayload(seal(t, id, envelope.Binding{Namespace: "default-test-namespace", WorkflowID: wfID, Operation: "start"}))
	if err != nil {
		t.Fatal(err)
	}
	env.SetHeader(&commonpb.Header{Fields: map[string]*commonpb.Payload{EnvelopeHeader: p}})
}

func whoAmI(ctx context.Context) (string, error) {
	id, err := identity.FromActivity(ctx)
	if err != nil {
		return "", err
	}
	return id.Subject, nil
}

func conformance(ctx workflow.Context) ([]string, error) {
	var seen []string
	id, err := identity.FromWorkflow(ctx)
	if err != nil {
		return nil, err
	}
	seen = append(seen, "workflow:"+id.Subject)
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var sub string
	if err := workflow.ExecuteActivity(ctx, whoAmI).Get(ctx, &sub); err != nil {
		return nil, err
	}
	seen = append(seen, "activity:"+sub)
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: time.Minute})
	if err := workflow.ExecuteLocalActivity(lctx, whoAmI).Get(ctx, &sub); err != nil {
		return nil, err
	}
	seen = append(seen, "local:"+sub)
	return seen, nil
}

func TestWorkerPropagatesIdentityToActivities(t *testing.T) {
	auth := &fakeAuth{sessions: map[string]*identity.Identity{}}
	env := newEnv(t, auth)
	env.RegisterWorkflow(conformance)
	env.RegisterActivity(whoAmI)
	startHeader(t, env, identity.Identity{Subject: "bob", Issuer: "https://idp"}, "default-test-workflow-id")
	env.ExecuteWorkflow(conformance)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var seen []string
	if err := env.GetWorkflowResult(&seen); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(seen, ","); got != "workflow:bob,activity:bob,local:bob" {
		t.Fatalf("seen %s", got)
	}
	// The run's session reaches EndSession by name: interceptors' input and activities'
	// EndSessionInput agree (the layers keep them two types).
	if len(auth.ended) != 1 || auth.ended[0] != "s-bob-start" {
		t.Fatalf("sessions ended: %v, want the run's one session", auth.ended)
	}
}

func TestWorkerRefusesMissingOrForeignEnvelope(t *testing.T) {
	for name, setup := range map[string]func(*testing.T, *testsuite.TestWorkflowEnvironment){
		"no envelope": func(*testing.T, *testsuite.TestWorkflowEnvironment) {},
		"other workflow": func(t *testing.T, env *testsuite.TestWorkflowEnvironment) {
			startHeader(t, env, identity.Identity{Subject: "bob"}, "another-workflow")
		},
		"oversized header": func(t *testing.T, env *testsuite.TestWorkflowEnvironment) {
			p, _ := headerConverter.ToPayload(make([]byte, maxHeaderSize+1))
			env.SetHeader(&commonpb.Header{Fields: map[string]*commonpb.Payload{EnvelopeHeader: p}})
		},
		"forged reference": func(t *testing.T, env *testsuite.TestWorkflowEnvironment) {
			p, _ := headerConverter.ToPayload(reference{Version: 1, Session: "s-bob-start", Subject: "bob", Op: opChild})
			env.SetHeader(&commonpb.Header{Fields: map[string]*commonpb.Payload{SessionHeader: p}})
		},
	} {
		t.Run(name, func(t *testing.T) {
			auth := &fakeAuth{sessions: map[string]*identity.Identity{}}
			env := newEnv(t, auth)
			env.RegisterWorkflow(conformance)
			env.RegisterActivity(whoAmI)
			setup(t, env)
			env.ExecuteWorkflow(conformance)
			err := env.GetWorkflowError()
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || !appErr.NonRetryable() || appErr.Type() != identity.TypeUnauthenticated {
				t.Fatalf("want a non-retryable %s, got %v", identity.TypeUnauthenticated, err)
			}
		})
	}
}

func anonymous(ctx workflow.Context) (string, error) {
	if _, err := identity.FromWorkflow(ctx); err == nil {
		return "", errors.New("unexpected identity")
	}
	return "ran", nil
}

func TestWorkerAllowsListedAnonymousWorkflows(t *testing.T) {
	env := newEnv(t, &fakeAuth{sessions: map[string]*identity.Identity{}}, "anonymous")
	env.RegisterWorkflow(anonymous)
	env.ExecuteWorkflow(anonymous)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
}

func TestReferenceMAC(t *testing.T) {
	keys, err := newMACKeys([][]byte{secret})
	if err != nil {
		t.Fatal(err)
	}
	old, _ := newMACKeys([][]byte{[]byte("ffffffffffffffffffffffffffffffff")})
	good := reference{Session: "s1", Subject: "bob", Op: opChild, From: "run-1"}
	keys.sign(&good)
	if err := keys.verify(&good, opChild, "run-1"); err != nil {
		t.Fatalf("valid reference refused: %v", err)
	}
	rotated, _ := newMACKeys([][]byte{[]byte("ffffffffffffffffffffffffffffffff"), secret})
	if err := rotated.verify(&good, opChild, "run-1"); err != nil {
		t.Fatalf("reference signed with the previous key refused: %v", err)
	}
	for name, mutate := range map[string]func(r *reference){
		"session":   func(r *reference) { r.Session = "s2" },
		"subject":   func(r *reference) { r.Subject = "alice" },
		"owner":     func(r *reference) { r.Owner = true },
		"sender":    func(r *reference) { r.Sender = &identity.Identity{Subject: "alice"} },
		"mac":       func(r *reference) { r.MAC[0] ^= 1 },
		"no mac":    func(r *reference) { r.MAC = nil },
		"version":   func(r *reference) { r.Version = 3 },
		"target":    func(r *reference) { r.Target = "ns/wf" },
		"digest":    func(r *reference) { r.Digest = "00" },
		"expires":   func(r *reference) { r.Expires = 1 },
		"other key": func(r *reference) { old.sign(r) },
	} {
		r := good
		r.MAC = append([]byte(nil), good.MAC...)
		mutate(&r)
		if err := keys.verify(&r, opChild, "run-1"); !errors.Is(err, ErrBadReference) {
			t.Errorf("%s changed: got %v, want ErrBadReference", name, err)
		}
	}
	for name, want := range map[string][2]string{
		"op":   {opContinue, "run-1"},
		"from": {opChild, "run-2"},
	} {
		if err := keys.verify(&good, want[0], want[1]); !errors.Is(err, ErrBadReference) {
			t.Errorf("other %s accepted", name)
		}
	}
	if _, err := newMACKeys([][]byte{[]byte("short")}); err == nil {
		t.Error("a short secret was accepted")
	}
}

// TestActivityTaskNeedsAReference: an activity task that carries no reference (scheduled by a
// workflow that does not run on the pool, say) is refused before the activity runs.
func TestActivityTaskNeedsAReference(t *testing.T) {
	wi, err := NewWorkerInterceptor(WorkerOptions{Authenticator: &fakeAuth{}, PropagationSecrets: [][]byte{secret}})
	if err != nil {
		t.Fatal(err)
	}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{wi}})
	ran := false
	env.RegisterActivityWithOptions(func(context.Context) error { ran = true; return nil },
		activity.RegisterOptions{Name: "EndSession"})
	_, err = env.ExecuteActivity("EndSession")
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.NonRetryable() || appErr.Type() != identity.TypeUnauthenticated {
		t.Fatalf("want a non-retryable %s, got %v", identity.TypeUnauthenticated, err)
	}
	if ran {
		t.Fatal("the activity ran")
	}
}

func poolOnly(ctx context.Context) (string, error) {
	if err := identity.RequirePool(ctx); err != nil {
		return "", identity.ApplicationError(err)
	}
	if _, err := identity.FromActivity(ctx); err == nil {
		return "", errors.New("a person's identity under the pool's authority")
	}
	return "pool", nil
}

func asPool(ctx workflow.Context) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var out string
	if err := workflow.ExecuteActivity(identity.AsPool(ctx), poolOnly).Get(ctx, &out); err != nil {
		return "", err
	}
	// From the person's context, the pool-only activity is refused.
	err := workflow.ExecuteActivity(ctx, poolOnly).Get(ctx, nil)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != identity.TypeUnauthenticated {
		return "", fmt.Errorf("a person's context ran a pool-only activity: %v", err)
	}
	return out, nil
}

func TestPoolAuthority(t *testing.T) {
	env := newEnv(t, &fakeAuth{sessions: map[string]*identity.Identity{}})
	env.RegisterWorkflow(asPool)
	env.RegisterActivity(poolOnly)
	startHeader(t, env, identity.Identity{Subject: "bob", Issuer: "https://idp"}, "default-test-workflow-id")
	env.ExecuteWorkflow(asPool)
	var out string
	if err := env.GetWorkflowResult(&out); err != nil || out != "pool" {
		t.Fatalf("got %q, %v", out, err)
	}
}

func TestPoolReferenceIsBoundToRunAndActivityType(t *testing.T) {
	keys, _ := newMACKeys([][]byte{secret})
	r := reference{Op: opPool + "RevokeAccess", From: "run-1"}
	keys.sign(&r)
	if err := keys.verify(&r, opPool+"RevokeAccess", "run-1"); err != nil {
		t.Fatalf("valid pool reference refused: %v", err)
	}
	for name, c := range map[string][2]string{
		"other run":      {opPool + "RevokeAccess", "run-2"},
		"other activity": {opPool + "EndSession", "run-1"},
	} {
		if err := keys.verify(&r, c[0], c[1]); !errors.Is(err, ErrBadReference) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	withSession := r
	withSession.Session = "s1"
	keys.sign(&withSession)
	if err := keys.verify(&withSession, opPool+"RevokeAccess", "run-1"); !errors.Is(err, ErrBadReference) {
		t.Errorf("a pool reference naming a session was accepted")
	}
}

// TestInputDigestCanonicalForm: encodings that decode into the same Go value digest alike;
// ones that decode differently, or ambiguously, do not.
func TestInputDigestCanonicalForm(t *testing.T) {
	type in struct {
		Approved bool   `json:"approved"`
		Note     string `json:"note,omitempty"`
		Count    int    `json:"count"`
	}
	digest := func(raw string) ([]byte, error) {
		return payloadDigest("op", []*commonpb.Payload{{
			Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(raw)}})
	}
	want, err := InputDigest("op", in{Approved: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, same := range []string{`{"approved":true}`, `{"count":0,"approved":true,"note":""}`, ` { "approved" : true } `} {
		if got, err := digest(same); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: digest differs (%v)", same, err)
		}
	}
	for _, other := range []string{`{"approved":false}`, `{"approved":true,"count":1}`, `{"approved":true,"extra":"x"}`} {
		if got, err := digest(other); err != nil || bytes.Equal(got, want) {
			t.Errorf("%s: digests like the original (%v)", other, err)
		}
	}
	for _, twice := range []string{`{"approved":true,"Approved":false}`, `{"note":"a","NOTE":"b"}`, "{\"nose\":\"a\",\"no\u017fe\":\"b\"}"} {
		if _, err := digest(twice); err == nil {
			t.Errorf("%s: members that differ only in case were digested", twice)
		}
	}
	if _, err := digest(`not json`); err == nil {
		t.Error("a payload that is not JSON was digested")
	}
}
