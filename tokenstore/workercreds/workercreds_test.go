package workercreds

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTokenSourceCachesAndRenews(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	ttl := 40
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/openid-configuration" {
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "token_endpoint": srv.URL + "/token"})
			return
		}
		id, secret, ok := r.BasicAuth()
		_ = r.ParseForm()
		if !ok || id != "worker" || secret != "SECRET-CLIENT" || r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("audience") != "temporal" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"bad SECRET-CLIENT"}`))
			return
		}
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "AT-SECRET-" + strconv.Itoa(n), "token_type": "bearer", "expires_in": ttl})
	}))
	defer srv.Close()

	ts, err := TokenSource(context.Background(), Options{Issuer: srv.URL, ClientID: "worker", ClientSecret: "SECRET-CLIENT", Audience: "temporal"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		tok, err := ts.Token()
		if err != nil {
			t.Fatal(err)
		}
		if tok.AccessToken != "AT-SECRET-1" {
			t.Fatalf("token %d not reused", calls)
		}
	}
	// A token valid for less than EarlyExpiry is replaced at once.
	ts2, _ := TokenSource(context.Background(), Options{TokenURL: srv.URL + "/token", ClientID: "worker", ClientSecret: "SECRET-CLIENT", Audience: "temporal", EarlyExpiry: time.Minute})
	a, _ := ts2.Token()
	b, _ := ts2.Token()
	if a.AccessToken == b.AccessToken {
		t.Fatal("token inside EarlyExpiry reused")
	}

	bad, _ := TokenSource(context.Background(), Options{TokenURL: srv.URL + "/token", ClientID: "worker", ClientSecret: "SECRET-WRONG"})
	_, err = bad.Token()
	if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("err %v", err)
	}
	if TemporalCredentials(ts) == nil {
		t.Fatal("no credentials")
	}
}
