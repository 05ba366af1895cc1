package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
)

// Span and attribute names of oidcflow's spans.
const (
	// SpanVerify is the span of one verification (Open or Resume).
	SpanVerify = "oidcflow.verify"
	// SpanRefresh is the span of one refresh (see Refresher).
	SpanRefresh = "oidcflow.refresh"

	// AttrOperation is what was verified: the envelope's operation (start,
	// update:<name>, signal:<name>) or "resume" for a session's current token.
	AttrOperation = attribute.Key("oidcflow.operation")
	// AttrResult is ResultOK, ResultRefused or ResultError.
	AttrResult = attribute.Key("oidcflow.result")
	// AttrSubject is the verified subject (sub claim); absent when nothing was verified.
	AttrSubject = attribute.Key("oidcflow.subject")
	// AttrErrorType is the identity error's type string (identity.TypeForbidden, ...) of a
	// refusal. A span never carries an error's message.
	AttrErrorType = attribute.Key("oidcflow.error_type")
)

// opResume is AttrOperation of Resume.
const opResume = "resume"

// Authenticator returns next with every verification counted (MetricVerifications), timed
// (MetricVerificationDuration) and traced (a SpanVerify span, child of the span in the
// context: the SDK tracing interceptor's activity span). Open and Resume are verifications;
// a refused Spend is counted as one too. End and SpendEnvelope pass through unobserved.
func (t *Telemetry) Authenticator(next interceptors.Authenticator) interceptors.Authenticator {
	return &authenticator{next: next, t: t}
}

type authenticator struct {
	next interceptors.Authenticator
	t    *Telemetry
}

// observe runs verify in a span and records its outcome.
func (a *authenticator) observe(ctx context.Context, kind attribute.KeyValue, operation string,
	verify func(context.Context) (*identity.Identity, error)) (*identity.Identity, error) {
	start := time.Now()
	ctx, span := a.t.tracer.Start(ctx, SpanVerify, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(AttrOperation.String(operation)))
	defer span.End()
	id, err := verify(ctx)
	r := result(err)
	a.t.inst.verified(kind, r, time.Since(start))
	span.SetAttributes(AttrResult.String(r))
	if err != nil {
		if typ := errorType(err); typ != "" {
			span.SetAttributes(AttrErrorType.String(typ))
		}
		span.SetStatus(codes.Error, r) // not err.Error(): spans stay free of messages
	} else if id != nil {
		span.SetAttributes(AttrSubject.String(id.Subject))
	}
	return id, err
}

func (a *authenticator) Open(ctx context.Context, op interceptors.Operation, sealed []byte) (*identity.Identity, error) {
	return a.observe(ctx, a.t.inst.envelope, op.Binding.Operation, func(ctx context.Context) (*identity.Identity, error) {
		return a.next.Open(ctx, op, sealed)
	})
}

func (a *authenticator) Resume(ctx context.Context, sessionID string) (*identity.Identity, error) {
	return a.observe(ctx, a.t.inst.session, opResume, func(ctx context.Context) (*identity.Identity, error) {
		return a.next.Resume(ctx, sessionID)
	})
}

func (a *authenticator) End(ctx context.Context, sessionID, holder string) error {
	return a.next.End(ctx, sessionID, holder)
}

func (a *authenticator) SpendEnvelope(ctx context.Context, op interceptors.Operation, sealed []byte) error {
	return a.next.SpendEnvelope(ctx, op, sealed)
}

// Spend counts a refused spend as a refused verification: a signal reference replayed.
func (a *authenticator) Spend(ctx context.Context, id, owner string, until time.Time) error {
	err := a.next.Spend(ctx, id, owner, until)
	if err != nil {
		a.t.inst.verifications.Add(context.Background(), 1, metricWith(a.t.inst.resultAttr(result(err))))
	}
	return err
}
