package testharness

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

// TokenProxy stands in front of a token endpoint like a load balancer in front of a busy
// identity provider: every request is passed on and completed at the identity provider even
// when the caller hangs up (so a refresh it answered is committed there), and while the
// proxy is stalled, the answers are held back until the stall ends. It counts what the
// identity provider answered, never a token. Make it with NewTokenProxy.
type TokenProxy struct {
	// URL is the proxy's token endpoint.
	URL string

	tokenURL string
	mu       sync.Mutex
	until    time.Time // answers are held until then
	counts   TokenProxyCounts
}

// TokenProxyCounts are what a TokenProxy saw.
type TokenProxyCounts struct {
	// Requests is the number of token requests passed on.
	Requests int
	// Grants counts refresh grants the identity provider answered with new tokens (200).
	Grants int
	// InvalidGrant counts refresh grants it refused with invalid_grant: a refresh token that
	// was revoked, expired, or reused (which revokes its whole family).
	InvalidGrant int
	// Held counts answers held back by a stall.
	Held int
	// Lost counts answers whose caller had hung up before the proxy could deliver them.
	Lost int
}

// NewTokenProxy starts a TokenProxy in front of tokenURL; it stops when t ends.
func NewTokenProxy(t testing.TB, tokenURL string) *TokenProxy {
	t.Helper()
	p := &TokenProxy{tokenURL: tokenURL}
	srv := httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// Stall holds every answer the identity provider gives during the next d back until d has
// passed.
func (p *TokenProxy) Stall(d time.Duration) {
	p.mu.Lock()
	p.until = time.Now().Add(d)
	p.mu.Unlock()
}

// Counts returns what the proxy saw so far.
func (p *TokenProxy) Counts() TokenProxyCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts
}

func (p *TokenProxy) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	// The caller hanging up does not cancel the request at the identity provider: its
	// answer is committed there, as it is when a load balancer loses the answer in transit.
	req, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, p.tokenURL, bytes.NewReader(body))
	if err != nil {
		http.Error(w, "testharness: proxy request", http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	req.Header.Del("Accept-Encoding") // so that the transport decompresses the answer
	p.mu.Lock()
	p.counts.Requests++
	p.mu.Unlock()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, "testharness: proxy could not reach the token endpoint", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	p.mu.Lock()
	if form.Get("grant_type") == "refresh_token" {
		var e struct {
			Error string `json:"error"`
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			p.counts.Grants++
		case json.Unmarshal(out, &e) == nil && e.Error == "invalid_grant":
			p.counts.InvalidGrant++
		}
	}
	hold := time.Until(p.until)
	if hold > 0 {
		p.counts.Held++
	}
	p.mu.Unlock()
	if hold > 0 {
		t := time.NewTimer(hold)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
	}
	if r.Context().Err() != nil {
		p.mu.Lock()
		p.counts.Lost++
		p.mu.Unlock()
		return
	}
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
}
