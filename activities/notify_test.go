package activities

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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

// TestNotifyEscapesMrkdwn is the attack of a requester who writes Slack control sequences
// into what the workflow posts (a reason, a resource name): <!channel> would ping every
// member, <http://evil|Approve here> would render a disguised link. Everything but the
// formatting Notify adds itself arrives with &, < and > escaped, so Slack shows it as text.
func TestNotifyEscapesMrkdwn(t *testing.T) {
	var got slackMessage
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, json.NewDecoder(r.Body).Decode(&got))
	}))
	defer srv.Close()
	a := &NotifyActivities{WebhookURL: srv.URL}
	_, err := a.Notify(context.Background(), NotifyInput{
		Audience:   "<!here>",
		Event:      "access.requested<@U123>",
		Text:       "*bob* asks: <!channel> urgent, see <http://evil.example|Approve here> & <!subteam^S1>",
		WorkflowID: "wf-<https://evil.example|x>",
	})
	require.NoError(t, err)
	const text = "*bob* asks: &lt;!channel&gt; urgent, see &lt;http://evil.example|Approve here&gt; &amp; &lt;!subteam^S1&gt;"
	require.Equal(t, text, got.Text)
	require.Len(t, got.Blocks, 2)
	require.Equal(t, text, got.Blocks[0].Text.Text)
	ctxLine := got.Blocks[1].Elements[0].Text
	require.Equal(t, "for *&lt;!here&gt;* · event `access.requested&lt;@U123&gt;` · workflow `wf-&lt;https://evil.example|x&gt;`", ctxLine)
	for _, s := range []string{got.Text, got.Blocks[0].Text.Text, ctxLine} {
		require.NotContains(t, s, "<")
		require.NotContains(t, s, ">")
	}
}

// TestNotifyFollowsNoRedirect is the attack of a webhook endpoint (or anyone who can answer
// for it) that redirects the post elsewhere, to an internal service say: the redirect is
// not followed, the second server sees no request, and the answer is a non-retryable
// rejection that names neither URL.
func TestNotifyFollowsNoRedirect(t *testing.T) {
	var reached atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	defer target.Close()
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/internal/secretpath", code)
			}))
			defer hook.Close()
			for _, hc := range []*http.Client{nil, {}, http.DefaultClient} {
				_, err := (&NotifyActivities{WebhookURL: hook.URL + "/hooks/secretpath", HTTPClient: hc}).Notify(
					context.Background(), NotifyInput{Event: "x", Text: "y"})
				var app *temporal.ApplicationError
				require.ErrorAs(t, err, &app)
				require.True(t, app.NonRetryable())
				require.Equal(t, TypeWebhookRejected, app.Type())
				requireNoAddress(t, err, hook.URL, target.URL)
			}
			require.Zero(t, reached.Load(), "the redirect was followed")
		})
	}
	require.Nil(t, http.DefaultClient.CheckRedirect, "Notify changed the caller's client")
}

// TestNotifyErrorsNameNoAddress: a failed post reports only the kind of failure, never the
// webhook's host, address or URL, since the error is recorded in workflow history.
func TestNotifyErrorsNameNoAddress(t *testing.T) {
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	defer slow.Close()
	defer close(hang)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	refused := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: &net.TCPAddr{IP: net.ParseIP("10.0.0.5"), Port: 443},
			Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	noHost := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: "hooks.corp.internal", IsNotFound: true}}
	}
	for _, c := range []struct {
		name string
		url  string
		hc   *http.Client
		kind string
	}{
		{"refused, internal address", "https://10.0.0.5:443/services/secretpath", &http.Client{Transport: &http.Transport{DialContext: refused}}, "connection refused"},
		{"refused, nothing listens", closed.URL + "/services/secretpath", nil, "connection refused"},
		{"unknown host", "https://hooks.corp.internal/services/secretpath", &http.Client{Transport: &http.Transport{DialContext: noHost}}, "name resolution"},
		{"timeout", slow.URL + "/services/secretpath", &http.Client{Timeout: 50 * time.Millisecond}, "timeout"},
		{"untrusted certificate", tlsSrv.URL + "/services/secretpath", nil, "tls"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := (&NotifyActivities{WebhookURL: c.url, HTTPClient: c.hc}).Notify(context.Background(), NotifyInput{Event: "x", Text: "y"})
			require.Error(t, err)
			require.Contains(t, err.Error(), c.kind)
			requireNoAddress(t, err, c.url, "10.0.0.5", "hooks.corp.internal")
			var app *temporal.ApplicationError
			require.False(t, errors.As(err, &app) && app.NonRetryable(), "a network failure must stay retryable")
		})
	}
}

// requireNoAddress fails when err names any of urls, their hosts, addresses or ports.
func requireNoAddress(t *testing.T, err error, urls ...string) {
	t.Helper()
	msg := err.Error()
	require.NotContains(t, msg, "secretpath")
	require.NotContains(t, msg, "127.0.0.1")
	for _, s := range urls {
		u, perr := url.Parse(s)
		if perr != nil || u.Host == "" {
			require.NotContains(t, msg, s)
			continue
		}
		require.NotContains(t, msg, u.Hostname())
		if p := u.Port(); p != "" {
			require.NotContains(t, msg, ":"+p)
		}
	}
}
