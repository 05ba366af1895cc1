package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"go.temporal.io/sdk/temporal"
)

// TypeWebhookRejected is the (non-retryable) error type of a webhook that answered 4xx.
const TypeWebhookRejected = "oidcflow.WebhookRejected"

// NotifyActivities post notifications to a Slack-compatible incoming webhook. Register a
// pointer. Retries are the workflow's retry policy; one activity attempt is one POST.
type NotifyActivities struct {
	// WebhookURL receives the JSON posts. Default "": notifications are logged and dropped.
	WebhookURL string
	// HTTPClient posts. Default: a client with a 10 s timeout.
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
	// Text is the message (Slack mrkdwn).
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

// Notify posts one message. 5xx, 429 and network errors are retryable; any other non-2xx is
// a non-retryable TypeWebhookRejected. The response body is never echoed into the error.
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
	ctxText := "event `" + in.Event + "`"
	if in.Audience != "" {
		ctxText = "for *" + in.Audience + "* · " + ctxText
	}
	if in.WorkflowID != "" {
		ctxText += " · workflow `" + in.WorkflowID + "`"
	}
	body, err := json.Marshal(slackMessage{
		Text: in.Text,
		Blocks: []slackBlock{
			{Type: "section", Text: &slackText{Type: "mrkdwn", Text: in.Text}},
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
	client := a.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		// The URL may hold a secret path (Slack webhooks do): report the kind of failure only.
		return NotifyResult{}, fmt.Errorf("activities: notify: post failed: %s", withoutURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return NotifyResult{Delivered: true}, nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return NotifyResult{}, fmt.Errorf("activities: notify: webhook answered %d", resp.StatusCode)
	default:
		return NotifyResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("activities: notify: webhook rejected the message with %d", resp.StatusCode), TypeWebhookRejected, nil)
	}
}

// withoutURL returns the message of err without the request URL, which may hold a secret
// path (Slack webhook URLs do).
func withoutURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return "request error"
}
