package tokenstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/oidcflow/oidcflow/identity"
)

// fakeVault is an httptest KV v2 engine: data read/write with check-and-set (answering with
// Vault's own texts) and metadata delete.
type fakeVault struct {
	t     testing.TB
	srv   *httptest.Server
	mount string

	mu       sync.Mutex
	secrets  map[string]*fakeSecret
	failWith int // answer every request with this status while non-zero
	writes   int
	reads    int
}

type fakeSecret struct {
	version int
	data    map[string]any
}

func newFakeVault(t testing.TB) *fakeVault {
	fv := &fakeVault{t: t, mount: "oidcflow", secrets: map[string]*fakeSecret{}}
	fv.srv = httptest.NewServer(http.HandlerFunc(fv.serve))
	t.Cleanup(fv.srv.Close)
	return fv
}

func (fv *fakeVault) client(t testing.TB) *vault.Client {
	cfg := vault.DefaultConfig()
	cfg.Address = fv.srv.URL
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("test-vault-token")
	return c
}

func (fv *fakeVault) store(t testing.TB, clock func() time.Time) *Store {
	st, err := NewStore(StoreOptions{Client: fv.client(t), Mount: fv.mount, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func vaultErrors(w http.ResponseWriter, status int, msgs ...string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if msgs == nil {
		msgs = []string{}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": msgs})
}

func (fv *fakeVault) setFail(status int) {
	fv.mu.Lock()
	fv.failWith = status
	fv.mu.Unlock()
}

func (fv *fakeVault) serve(w http.ResponseWriter, r *http.Request) {
	fv.mu.Lock()
	defer fv.mu.Unlock()
	if fv.failWith != 0 {
		vaultErrors(w, fv.failWith, "fake vault is down")
		return
	}
	if r.Header.Get("X-Vault-Token") != "test-vault-token" {
		vaultErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/"+fv.mount+"/")
	if !ok {
		vaultErrors(w, http.StatusNotFound, "no handler for route")
		return
	}
	kind, path, _ := strings.Cut(rest, "/")
	switch {
	case kind == "data" && r.Method == http.MethodGet:
		fv.reads++
		s := fv.secrets[path]
		if s == nil {
			vaultErrors(w, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{
			"data":     s.data,
			"metadata": map[string]any{"version": s.version, "created_time": time.Now().UTC().Format(time.RFC3339Nano), "deletion_time": "", "destroyed": false},
		}})
	case kind == "data" && (r.Method == http.MethodPut || r.Method == http.MethodPost):
		var body struct {
			Data    map[string]any `json:"data"`
			Options map[string]any `json:"options"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			vaultErrors(w, http.StatusBadRequest, err.Error())
			return
		}
		casV, ok := body.Options["cas"].(float64)
		if !ok {
			vaultErrors(w, http.StatusBadRequest, "check-and-set parameter required for this call")
			return
		}
		cur := 0
		if s := fv.secrets[path]; s != nil {
			cur = s.version
		}
		if int(casV) != cur {
			vaultErrors(w, http.StatusBadRequest, "check-and-set parameter did not match the current version")
			return
		}
		fv.writes++
		fv.secrets[path] = &fakeSecret{version: cur + 1, data: body.Data}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{
			"version": cur + 1, "created_time": time.Now().UTC().Format(time.RFC3339Nano), "deletion_time": "", "destroyed": false}})
	case kind == "metadata" && r.Method == http.MethodDelete:
		delete(fv.secrets, path)
		w.WriteHeader(http.StatusNoContent)
	default:
		vaultErrors(w, http.StatusMethodNotAllowed, "unsupported")
	}
}

// stored returns the raw stored record of a session.
func (fv *fakeVault) stored(id string) (record, bool) {
	fv.mu.Lock()
	defer fv.mu.Unlock()
	s := fv.secrets["sessions/"+id]
	if s == nil {
		return record{}, false
	}
	var r record
	if err := fromData(s.data, &r); err != nil {
		fv.t.Fatal(err)
	}
	return r, true
}

// fakeIdP is an httptest OAuth 2.0 server with rotating refresh tokens and reuse detection
// (a reused refresh token revokes its family, as Hydra does), a revocation endpoint and
// discovery. Token values carry recognisable prefixes so tests can scan for leaks.
type fakeIdP struct {
	t   testing.TB
	srv *httptest.Server

	mu          sync.Mutex
	n           int
	current     map[string]string // family -> current refresh token
	used        map[string]string // used refresh token -> family
	revoked     map[string]bool   // family -> revoked
	refreshes   int
	tokenCalls  int
	revocations []string // revoked tokens
	revokeForms []string
	grace       bool          // accept the previous refresh token once more (rotation grace)
	graceFor    time.Duration // with grace: only this long after its first use (by now); 0: forever
	usedAt      map[string]time.Time
	failNext    int           // answer the next token requests with this status
	failCount   int           // how many
	failHeader  http.Header   // headers of the failure answers
	subject     string        // sub of issued ID tokens
	delay       time.Duration // before answering a token request
	ttl         int           // expires_in
	idTTL       int           // ID token lifetime in seconds; 0: its exp is not told
	omitIDToken bool          // answer refreshes without id_token (OIDC Core 12.2 allows it)
	now         func() time.Time
	lastRT      map[string]string
}

func newFakeIdP(t testing.TB) *fakeIdP {
	f := &fakeIdP{t: t, current: map[string]string{}, used: map[string]string{}, revoked: map[string]bool{},
		lastRT: map[string]string{}, usedAt: map[string]time.Time{}, subject: "bob", ttl: 300, now: time.Now}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": f.srv.URL, "token_endpoint": f.srv.URL + "/token", "revocation_endpoint": f.srv.URL + "/revoke"})
	})
	mux.HandleFunc("/token", f.token)
	mux.HandleFunc("/revoke", f.revoke)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// family starts a token family and returns its first refresh token.
func (f *fakeIdP) family() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	fam := "fam" + strconv.Itoa(f.n)
	rt := "RT-SECRET-" + fam + "-0"
	f.current[fam] = rt
	return rt
}

func oauthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": "fake says " + code})
}

func (f *fakeIdP) token(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.tokenCalls++
	delay := f.delay
	f.mu.Unlock()
	time.Sleep(delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failCount > 0 {
		f.failCount--
		for k, v := range f.failHeader {
			w.Header()[k] = v
		}
		oauthError(w, f.failNext, "temporarily_unavailable")
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "refresh_token" {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if r.PostForm.Get("client_id") != "starter" {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	rt := r.PostForm.Get("refresh_token")
	fam := ""
	for fm, cur := range f.current {
		if cur == rt {
			fam = fm
		}
	}
	if fam == "" {
		if fm, ok := f.used[rt]; ok {
			if f.grace && f.lastRT[fm] == rt && !f.revoked[fm] &&
				(f.graceFor == 0 || f.now().Before(f.usedAt[rt].Add(f.graceFor))) {
				fam = fm
			} else {
				f.revoked[fm] = true // reuse detection: the whole family dies
			}
		}
	}
	if fam == "" || f.revoked[fam] {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	f.refreshes++
	if _, ok := f.usedAt[rt]; !ok {
		f.usedAt[rt] = f.now()
	}
	f.used[rt] = fam
	f.lastRT[fam] = rt
	n := strconv.Itoa(f.refreshes)
	next := "RT-SECRET-" + fam + "-" + n
	f.current[fam] = next
	w.Header().Set("Content-Type", "application/json")
	answer := map[string]any{
		"access_token": "AT-SECRET-" + fam + "-" + n, "token_type": "bearer", "expires_in": f.ttl,
		"refresh_token": next,
	}
	if !f.omitIDToken {
		answer["id_token"] = fakeIDToken(f.subject, n, f.now(), f.idTTL)
	}
	_ = json.NewEncoder(w).Encode(answer)
}

func (f *fakeIdP) revoke(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failCount > 0 {
		f.failCount--
		oauthError(w, f.failNext, "temporarily_unavailable")
		return
	}
	_ = r.ParseForm()
	f.revokeForms = append(f.revokeForms, r.PostForm.Encode())
	tok := r.PostForm.Get("token")
	f.revocations = append(f.revocations, tok)
	for fm, cur := range f.current {
		if cur == tok {
			f.revoked[fm] = true
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (f *fakeIdP) stats() (refreshes, calls int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refreshes, f.tokenCalls
}

func (f *fakeIdP) currentRT(rt0 string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fm, cur := range f.current {
		if strings.HasPrefix(rt0, "RT-SECRET-"+fm+"-") {
			return cur
		}
	}
	return ""
}

// fakeIDToken returns an ID token the fakeChecker accepts: "IDT-SECRET-<sub>-<n>", with
// "-exp<unix>" when ttl (seconds) is set.
func fakeIDToken(sub, n string, now time.Time, ttl int) string {
	raw := "IDT-SECRET-" + sub + "-" + n
	if ttl > 0 {
		raw += "-exp" + strconv.FormatInt(now.Add(time.Duration(ttl)*time.Second).Unix(), 10)
	}
	return raw
}

// fakeChecker accepts ID tokens "IDT-SECRET-<sub>-<n>[-exp<unix>]" and compares sub like
// CheckRefreshed. RecheckKeptIDToken answers for the userinfo endpoint: the access token's
// person is userinfoSub (default: the kept token's subject).
type fakeChecker struct {
	mu      sync.Mutex
	calls   int
	fail    error            // returned by VerifyIDToken when set
	onCheck func(raw string) // called in VerifyIDToken
	iss     string

	rechecks    []recheck // calls of RecheckKeptIDToken
	recheckFail error     // returned by RecheckKeptIDToken when set
	userinfoSub string
	onRecheck   func(idToken, accessToken string)
}

type recheck struct {
	idToken, accessToken string
	until                time.Time
}

func (c *fakeChecker) VerifyIDToken(ctx context.Context, raw string) (*identity.Identity, error) {
	c.mu.Lock()
	c.calls++
	fail, on := c.fail, c.onCheck
	c.mu.Unlock()
	if on != nil {
		on(raw)
	}
	if fail != nil {
		return nil, fail
	}
	return c.parse(raw)
}

func (c *fakeChecker) parse(raw string) (*identity.Identity, error) {
	rest, ok := strings.CutPrefix(raw, "IDT-SECRET-")
	if !ok {
		return nil, fmt.Errorf("%w: not a fake ID token", identity.ErrMalformedToken)
	}
	sub, rest, _ := strings.Cut(rest, "-")
	id := &identity.Identity{Subject: sub, Issuer: c.iss, Audience: []string{"starter"}}
	if _, e, ok := strings.Cut(rest, "-exp"); ok {
		unix, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: bad fake exp", identity.ErrMalformedToken)
		}
		id.Expiry = time.Unix(unix, 0)
	}
	return id, nil
}

func (c *fakeChecker) RecheckKeptIDToken(ctx context.Context, idToken, accessToken string, until time.Time) (*identity.Identity, error) {
	c.mu.Lock()
	c.rechecks = append(c.rechecks, recheck{idToken, accessToken, until})
	fail, on, sub := c.recheckFail, c.onRecheck, c.userinfoSub
	c.mu.Unlock()
	if on != nil {
		on(idToken, accessToken)
	}
	if fail != nil {
		return nil, fail
	}
	kept, err := c.parse(idToken)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(accessToken, "AT-SECRET-") {
		return nil, fmt.Errorf("%w: userinfo refuses the access token", identity.ErrInvalidToken)
	}
	if sub != "" && sub != kept.Subject {
		return nil, fmt.Errorf("%w: userinfo names %s, the kept ID token %s", identity.ErrInvalidToken, sub, kept.Subject)
	}
	if until.After(kept.Expiry) {
		kept.Expiry = until
	}
	return kept, nil
}

func (c *fakeChecker) recheckLog() []recheck {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]recheck(nil), c.rechecks...)
}

func (c *fakeChecker) CheckRefreshed(orig, refreshed *identity.Identity) error {
	if orig.Subject != refreshed.Subject || orig.Issuer != refreshed.Issuer {
		return fmt.Errorf("%w: refreshed ID token names %s, the session %s", identity.ErrInvalidToken, refreshed.Subject, orig.Subject)
	}
	return nil
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logBuffer captures slog output of every level.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(io.Writer(b), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
