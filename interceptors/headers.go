package interceptors

import (
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// Header keys, as seen in history. Their values are never secrets: a sealed envelope, or a
// session reference with a MAC.
const (
	// EnvelopeHeader carries a sealed envelope ([]byte, JSON payload) on starts, signals,
	// signal-with-starts and updates.
	EnvelopeHeader = "oidcflow-envelope"
	// SignalEnvelopeHeader carries the signal's own envelope on a signal-with-start, whose
	// one header Temporal gives to both the start and the signal.
	SignalEnvelopeHeader = "oidcflow-signal-envelope"
	// SessionHeader carries a session reference on activities, child workflows,
	// continue-as-new and external signals.
	SessionHeader = "oidcflow-session"
)

// maxHeaderSize caps what is decoded from a header before anything else looks at it.
const maxHeaderSize = 32 << 10

var headerConverter = converter.GetDefaultDataConverter()

// setHeader writes v under key; header is nil when the SDK offers no header for the call.
func setHeader(header map[string]*commonpb.Payload, key string, v any) error {
	if header == nil {
		return fmt.Errorf("interceptors: no header to write %s into", key)
	}
	p, err := headerConverter.ToPayload(v)
	if err != nil {
		return fmt.Errorf("interceptors: encode %s header: %w", key, err)
	}
	header[key] = p
	return nil
}

// getHeader decodes the value under key into v; ok is false when the header is absent.
func getHeader(header map[string]*commonpb.Payload, key string, v any) (ok bool, err error) {
	p := header[key]
	if p == nil {
		return false, nil
	}
	if len(p.GetData()) > maxHeaderSize {
		return true, fmt.Errorf("interceptors: %s header is %d bytes, more than the %d allowed: %w",
			key, len(p.GetData()), maxHeaderSize, errOversized)
	}
	if err := headerConverter.FromPayload(p, v); err != nil {
		return true, fmt.Errorf("interceptors: decode %s header: %w", key, errMalformedHeader)
	}
	return true, nil
}
