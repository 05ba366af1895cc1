package telemetry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/identity"
)

// Names of oidcflow's metrics as the Prometheus endpoint shows them. The OpenTelemetry
// instruments are named with dots and without the suffixes the exporter adds
// (oidcflow.verifications, oidcflow.verification.duration in seconds, ...).
const (
	// MetricVerifications counts verifications of an envelope or a session's current token,
	// and refused one-time spends of a signal reference; label result: ok, refused, error
	// (a transient failure of Vault or the identity provider: retried).
	MetricVerifications = "oidcflow_verifications_total"
	// MetricVerificationDuration is the latency of those verifications (histogram); labels
	// kind (envelope, session) and result.
	MetricVerificationDuration = "oidcflow_verification_duration_seconds"
	// MetricRefreshes counts the refreshes this process made at the identity provider and
	// stored (not another process's refresh it waited for).
	MetricRefreshes = "oidcflow_refreshes_total"
	// MetricRefreshFailures counts the calls for a fresh session that failed, refused
	// (re-consent needed) or transient; not those for a session that is not the caller's.
	MetricRefreshFailures = "oidcflow_refresh_failures_total"
	// MetricRefreshDuration is the latency of a call for a fresh session that refreshed or
	// failed (histogram), waiting for another caller's refresh included; label result: ok,
	// refused, error. Calls that found the session fresh are not observed.
	MetricRefreshDuration = "oidcflow_refresh_duration_seconds"
	// MetricDenials counts policy refusals (oidcflow.Forbidden failures); label surface:
	// activity, update.
	MetricDenials = "oidcflow_denials_total"
)

// Values of the result label and span attribute.
const (
	ResultOK      = "ok"
	ResultRefused = "refused" // an identity error: not retried
	ResultError   = "error"   // transient: Vault, the identity provider, a deadline
)

// instruments are oidcflow's own metrics on one meter.
type instruments struct {
	verifications       metric.Int64Counter
	verificationTime    metric.Float64Histogram
	refreshes           metric.Int64Counter
	refreshFailures     metric.Int64Counter
	refreshTime         metric.Float64Histogram
	denials             metric.Int64Counter
	activity, update    metric.MeasurementOption // denial surfaces
	envelope, session   attribute.KeyValue       // verification kinds
	ok, refused, failed attribute.KeyValue       // results
}

func newInstruments(m metric.Meter) (*instruments, error) {
	i := &instruments{
		activity: metric.WithAttributes(attribute.String("surface", "activity")),
		update:   metric.WithAttributes(attribute.String("surface", "update")),
		envelope: attribute.String("kind", "envelope"),
		session:  attribute.String("kind", "session"),
		ok:       attribute.String("result", ResultOK),
		refused:  attribute.String("result", ResultRefused),
		failed:   attribute.String("result", ResultError),
	}
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	histogram := func(name, desc string) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(buckets...))
		errs = append(errs, err)
		return h
	}
	i.verifications = counter("oidcflow.verifications", "{verification}",
		"Verifications of a sealed envelope or a session's current token, by result.")
	i.verificationTime = histogram("oidcflow.verification.duration",
		"Latency of verifications of a sealed envelope or a session's current token.")
	i.refreshes = counter("oidcflow.refreshes", "{refresh}",
		"Refreshes this process made at the identity provider.")
	i.refreshFailures = counter("oidcflow.refresh.failures", "{failure}",
		"Calls for a fresh session that failed.")
	i.refreshTime = histogram("oidcflow.refresh.duration",
		"Latency of calls for a fresh session that refreshed or failed.")
	i.denials = counter("oidcflow.denials", "{denial}", "Policy refusals of activities and updates.")
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("telemetry: instruments: %w", err)
	}
	// Every counter series exists from the start, at zero, so that a scraper (and an alert
	// on its rate) sees a series that has not counted anything yet.
	ctx := context.Background()
	for _, r := range []attribute.KeyValue{i.ok, i.refused, i.failed} {
		i.verifications.Add(ctx, 0, metric.WithAttributes(r))
	}
	i.refreshes.Add(ctx, 0)
	i.refreshFailures.Add(ctx, 0)
	i.denials.Add(ctx, 0, i.activity)
	i.denials.Add(ctx, 0, i.update)
	return i, nil
}

// result classifies the outcome of a verification: ok, refused (an identity error, which
// fails the task for good) or error (transient, retried).
func result(err error) string {
	switch {
	case err == nil:
		return ResultOK
	case errors.Is(err, identity.ErrUnauthenticated), errors.Is(err, identity.ErrReauthRequired),
		errors.Is(err, identity.ErrForbidden), errors.Is(err, identity.ErrInvalidToken),
		errors.Is(err, identity.ErrMalformedToken):
		return ResultRefused
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.NonRetryable() {
		return ResultRefused
	}
	return ResultError
}

// errorType is the constant type string of an identity error (identity.TypeForbidden, ...),
// or "" for any other error: what a span may say about a failure without its message.
func errorType(err error) string {
	var app *temporal.ApplicationError
	if errors.As(identity.ApplicationError(err), &app) {
		return app.Type()
	}
	return ""
}

func (i *instruments) resultAttr(r string) attribute.KeyValue {
	switch r {
	case ResultOK:
		return i.ok
	case ResultRefused:
		return i.refused
	}
	return i.failed
}

// verified records one verification of kind (i.envelope or i.session).
func (i *instruments) verified(kind attribute.KeyValue, r string, took time.Duration) {
	res := i.resultAttr(r)
	i.verifications.Add(context.Background(), 1, metric.WithAttributes(res))
	i.verificationTime.Record(context.Background(), took.Seconds(), metric.WithAttributes(kind, res))
}
