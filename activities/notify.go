package activities

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/temporal"
)

// NotifyActivities post notifications to a Slack-compatible incoming webhook. Register a
// pointer. Retries are the workflow's retry policy; one activity attempt is one POST.
//
// Message text comes partly from requesters (a reason, a resource name), so all of it is
// sent as literal text: &, < and > are escaped, and Slack's control sequences (<!channel>,
// <@user>, <http://link|label>) arrive inert. Notify's own *bold* and `code` marks are not
// escaped; the text inside them is. A redirect is never followed: the post goes to
// WebhookURL or nowhere. Errors, which land in workflow history, name the kind of failure,
// never the webhook's URL, host or address.
type NotifyActivities struct {
	// WebhookURL receives the JSON posts. Default "": notifications are logged and dropped.
	WebhookURL string
	// HTTPClient posts; Notify uses a copy that follows no redirect. Default: a client with
	// a 10 s timeout.
	HTTPClient *http.Client
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// NotifyInput is the input of Notify.
type NotifyInput struct {
	// Audience is who should act: a role or group name, e.g. "db-approver".
	Audience string `json:"audience,omitempty"`
	// Event is a short machine-readable kind, e.g. "access.requested".
	Event string `json:"event"`
	// Text is the message, sent as literal text (see NotifyActivities).
	Text string `json:"text"`
	// WorkflowID links the message to its run.
	WorkflowID string `json:"workflow_id,omitempty"`
}

// NotifyResult is the result of Notify.
type NotifyResult struct {
	// Delivered is false when no webhook is configured.
	Delivered bool `json:"delivered"`
}

// slackMessage is the subset of Slack's incoming-webhook payload we send: text as the
// fallback plus a section and a context block.
type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Notify posts one message. 5xx, 429 and network errors are retryable; any other non-2xx,
// a redirect included, is a non-retryable TypeWebhookRejected. The response body is never
// echoed into the error.
func (a *NotifyActivities) Notify(ctx context.Context, in NotifyInput) (NotifyResult, error) {
	log := a.Logger
	if log == nil {
		log = slog.Default()
	}
	if a.WebhookURL == "" {
		log.InfoContext(ctx, "notification (no webhook configured)", "event", in.Event,
			"audience", in.Audience, "workflow_id", in.WorkflowID)
		return NotifyResult{}, nil
	}
	text := escapeMrkdwn(in.Text)
	ctxText := "event `" + escapeMrkdwn(in.Event) + "`"
	if in.Audience != "" {
		ctxText = "for *" + escapeMrkdwn(in.Audience) + "* · " + ctxText
	}
	if in.WorkflowID != "" {
		ctxText += " · workflow `" + escapeMrkdwn(in.WorkflowID) + "`"
	}
	body, err := json.Marshal(slackMessage{
		Text: text,
		Blocks: []slackBlock{
			{Type: "section", Text: &slackText{Type: "mrkdwn", Text: text}},
			{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: ctxText}}},
		},
	})
	if err != nil {
		return NotifyResult{}, fmt.Errorf("activities: notify: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return NotifyResult{}, temporal.NewNonRetryableApplicationError("activities: notify: bad webhook url", TypeWebhookRejected, nil)
	}
	req.Header.Set("Content-Type", "application/json")
	var client http.Client
	if a.HTTPClient != nil {
		client = *a.HTTPClient
	} else {
		client.Timeout = 10 * time.Second
	}
	// A redirect is never followed: the post goes to WebhookURL or nowhere.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		// The URL may hold a secret path (Slack webhooks do), and the host or address is
		// internal: report the kind of failure only.
		return NotifyResult{}, fmt.Errorf("activities: notify: post failed: %s", postFailureKind(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return NotifyResult{Delivered: true}, nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return NotifyResult{}, fmt.Errorf("activities: notify: webhook answered %d", resp.StatusCode)
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return NotifyResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("activities: notify: webhook answered %d, a redirect, which is not followed; configure the webhook's final URL", resp.StatusCode), TypeWebhookRejected, nil)
	default:
		return NotifyResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("activities: notify: webhook rejected the message with %d", resp.StatusCode), TypeWebhookRejected, nil)
	}
}

// mrkdwnEscaper escapes the three characters Slack's mrkdwn gives meaning to beyond
// formatting (https://api.slack.com/reference/surfaces/formatting#escaping).
var mrkdwnEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// escapeMrkdwn makes s literal text in Slack mrkdwn: no mention, channel ping or link.
// Formatting marks (*, _, ~, `) are left alone.
func escapeMrkdwn(s string) string { return mrkdwnEscaper.Replace(s) }

// postFailureKind names what went wrong with a post, without the request URL (which may hold
// a secret path, as Slack webhook URLs do) and without host, address or port, which the
// errors of net and crypto/tls carry.
func postFailureKind(err error) string {
	var dns *net.DNSError
	var tlsRecord tls.RecordHeaderError
	var tlsAlert tls.AlertError
	var tlsVerify *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var badCert x509.CertificateInvalidError
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.As(err, &dns):
		return "name resolution failed"
	case errors.As(err, &tlsVerify), errors.As(err, &unknownCA), errors.As(err, &badHost), errors.As(err, &badCert),
		errors.As(err, &tlsRecord), errors.As(err, &tlsAlert):
		return "tls handshake failed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the webhook"
	}
	return "network error"
}
