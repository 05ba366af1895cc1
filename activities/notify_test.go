package activities

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
)

func TestNotify(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		retryable bool // false with an error: non-retryable
		wantErr   bool
	}{
		{"delivered", http.StatusOK, false, false},
		{"server error is retried", http.StatusBadGateway, true, true},
		{"rate limit is retried", http.StatusTooManyRequests, true, true},
		{"rejected is not retried", http.StatusBadRequest, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got map[string]any
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				require.Equal(t, "application/json", r.Header.Get("Content-Type"))
				b, _ := io.ReadAll(r.Body)
				require.NoError(t, json.Unmarshal(b, &got))
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte("internal detail that must not leak"))
			}))
			defer srv.Close()
			a := &NotifyActivities{WebhookURL: srv.URL + "/services/T000/B000/secretpath"}
			res, err := a.Notify(context.Background(), NotifyInput{
				Audience: "db-approver", Event: "access.requested", Text: "*bob* asks", WorkflowID: "wf-1",
			})
			require.Equal(t, "*bob* asks", got["text"], "Slack-compatible payload with a text fallback")
			require.Len(t, got["blocks"], 2)
			if !tc.wantErr {
				require.NoError(t, err)
				require.True(t, res.Delivered)
				return
			}
			require.Error(t, err)
			require.NotContains(t, err.Error(), "secretpath")
			require.NotContains(t, err.Error(), "internal detail")
			var app *temporal.ApplicationError
			if tc.retryable {
				require.False(t, errors.As(err, &app) && app.NonRetryable())
			} else {
				require.ErrorAs(t, err, &app)
				require.True(t, app.NonRetryable())
				require.Equal(t, TypeWebhookRejected, app.Type())
			}
		})
	}
}

func TestNotifyWithoutWebhookDrops(t *testing.T) {
	res, err := (&NotifyActivities{}).Notify(context.Background(), NotifyInput{Event: "x", Text: "y"})
	require.NoError(t, err)
	require.False(t, res.Delivered)
}

func TestNotifyNetworkErrorHidesURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/hooks/secretpath"
	srv.Close() // nothing listens any more
	_, err := (&NotifyActivities{WebhookURL: url}).Notify(context.Background(), NotifyInput{Event: "x", Text: "y"})
	require.Error(t, err)
	require.False(t, strings.Contains(err.Error(), "secretpath"), err.Error())
}
