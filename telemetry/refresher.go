package telemetry

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/tokenstore"
)

// Refresher is a *tokenstore.Refresher whose Fresh calls are measured: it satisfies what the
// session activities and the session store need of one (Fresh, RefreshDue, Revoke, ...).
// Make it with Telemetry.NewRefresher.
type Refresher struct {
	*tokenstore.Refresher
	t *Telemetry
}

// NewRefresher builds a tokenstore.Refresher from opts whose refreshes at the identity
// provider are counted (MetricRefreshes, through opts.OnRefreshed, which still runs when
// set). Its Fresh calls that fail are counted (MetricRefreshFailures), and those that
// refresh or fail are timed (MetricRefreshDuration) and traced (a SpanRefresh span, child of
// the span in the context: a verification's, or an activity's).
//
// A refresh belongs to the Fresh call that started it; a call that waited for another
// caller's refresh in this process, or found the session already refreshed by another
// process, records nothing. A call that gave up (its context ended) before its refresh
// finished records a failure, and the refresh is then only counted.
func (t *Telemetry) NewRefresher(opts tokenstore.RefresherOptions) (*Refresher, error) {
	then := opts.OnRefreshed
	opts.OnRefreshed = func(ctx context.Context, sessionID string) {
		t.inst.refreshes.Add(context.Background(), 1)
		if m, ok := ctx.Value(refreshMarkKey{}).(*atomic.Bool); ok {
			m.Store(true)
		}
		if then != nil {
			then(ctx, sessionID)
		}
	}
	r, err := tokenstore.NewRefresher(opts)
	if err != nil {
		return nil, err
	}
	return &Refresher{Refresher: r, t: t}, nil
}

// refreshMarkKey marks a Fresh call's context; the refresher's OnRefreshed hook, which runs
// with the context of the call that started the refresh, sets the mark.
type refreshMarkKey struct{}

// Fresh is tokenstore.Refresher.Fresh, measured.
func (r *Refresher) Fresh(ctx context.Context, sessionID string) (tokenstore.Session, error) {
	start := time.Now()
	mark := new(atomic.Bool)
	s, err := r.Refresher.Fresh(context.WithValue(ctx, refreshMarkKey{}, mark), sessionID)
	if errors.Is(err, identity.ErrUnauthenticated) || errors.Is(err, tokenstore.ErrInvalidSessionID) {
		return s, err // not a session the caller may refresh: no refresh was attempted
	}
	if err == nil && !mark.Load() {
		return s, nil // fresh already, or refreshed by someone else
	}
	took := time.Since(start)
	res := result(err)
	if err != nil {
		r.t.inst.refreshFailures.Add(context.Background(), 1)
	}
	r.t.inst.refreshTime.Record(context.Background(), took.Seconds(), metricWith(r.t.inst.resultAttr(res)))
	// The span is opened now, back-dated to the call's start: only now is it known that the
	// call refreshed.
	_, span := r.t.tracer.Start(ctx, SpanRefresh, trace.WithTimestamp(start), trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(AttrResult.String(res)))
	if err != nil {
		if typ := errorType(err); typ != "" {
			span.SetAttributes(AttrErrorType.String(typ))
		}
		span.SetStatus(codes.Error, res)
	} else {
		span.SetAttributes(AttrSubject.String(s.Subject))
	}
	span.End(trace.WithTimestamp(start.Add(took)))
	return s, err
}
