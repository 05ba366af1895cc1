package idp

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fakeHydra answers the admin API calls of the login and consent flow and records the
// accepted bodies.
type fakeHydra struct {
	accepted map[string]map[string]any
}

func (f *fakeHydra) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/admin/oauth2/auth/requests/login":
		json.NewEncoder(w).Encode(map[string]any{"skip": false, "client": map[string]any{"client_id": "starter"}})
	case r.Method == http.MethodGet && r.URL.Path == "/admin/oauth2/auth/requests/consent":
		json.NewEncoder(w).Encode(map[string]any{"subject": "dave", "requested_scope": []string{"openid", "offline_access"}})
	case r.Method == http.MethodPut:
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		f.accepted[r.URL.Path] = body
		json.NewEncoder(w).Encode(map[string]any{"redirect_to": "http://127.0.0.1:4444/next"})
	default:
		http.NotFound(w, r)
	}
}

func newServer(t testing.TB) (*Server, *fakeHydra, http.Handler) {
	t.Helper()
	fh := &fakeHydra{accepted: map[string]map[string]any{}}
	hs := httptest.NewServer(fh)
	t.Cleanup(hs.Close)
	s, err := New(Options{HydraAdminURL: hs.URL, StatePath: filepath.Join(t.TempDir(), "personas.json"), HookKey: "hook-key"})
	if err != nil {
		t.Fatal(err)
	}
	return s, fh, s.Handler()
}

// serve sends one request to h as a program on this machine would: Host 127.0.0.1:4446
// unless hdr sets "Host".
func serve(h http.Handler, method, target string, body io.Reader, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	req.Host = "127.0.0.1:4446"
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// jsonBody is the header of an admin request with a JSON body.
var jsonBody = map[string]string{"Content-Type": "application/json"}

func TestDefaultPersonas(t *testing.T) {
	f, err := ParseFile(DefaultPersonas)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]func(Persona) bool{
		"alice": func(p Persona) bool { return slices.Contains(p.Roles, "admin") },
		"bob":   func(p Persona) bool { return p.Department == "engineering" && slices.Contains(p.Roles, "engineer") },
		"carol": func(p Persona) bool { return p.Department == "engineering" && slices.Contains(p.Roles, "db-approver") },
		"dave": func(p Persona) bool {
			return p.Department == "finance" && slices.Contains(p.Roles, "finance-approver") && slices.Contains(p.Permissions, "can_approve_invoice")
		},
		"erin":  func(p Persona) bool { return len(p.Roles) == 0 && len(p.Permissions) == 0 && len(p.Groups) == 0 },
		"frank": func(p Persona) bool { return len(p.Roles) == 0 && slices.Contains(p.Groups, "sre") },
	}
	for name, ok := range want {
		p, found := f.Find(name)
		if !found || !ok(p) {
			t.Errorf("persona %s = %+v (found %v)", name, p, found)
		}
	}
	if len(f.Hierarchy.GroupImplies["sre"]) == 0 {
		t.Errorf("group sre implies no roles")
	}
}

func TestLoginAndConsent(t *testing.T) {
	_, fh, h := newServer(t)
	w := serve(h, http.MethodGet, "/login?login_challenge=c1", nil, nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `value="carol"`) {
		t.Fatalf("login page: %d %s", w.Code, w.Body.String())
	}
	form := url.Values{"login_challenge": {"c1"}, "persona": {"carol"}}.Encode()
	w = serve(h, http.MethodPost, "/login", strings.NewReader(form), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if w.Code != http.StatusFound || w.Header().Get("Location") != "http://127.0.0.1:4444/next" {
		t.Fatalf("login submit: %d %v", w.Code, w.Header())
	}
	if got := fh.accepted["/admin/oauth2/auth/requests/login/accept"]["subject"]; got != "carol" {
		t.Errorf("accepted subject = %v", got)
	}
	w = serve(h, http.MethodPost, "/login", strings.NewReader(url.Values{"login_challenge": {"c1"}, "persona": {"mallory"}}.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if w.Code != http.StatusBadRequest {
		t.Errorf("unknown persona: %d", w.Code)
	}

	w = serve(h, http.MethodGet, "/consent?consent_challenge=c2", nil, nil)
	if w.Code != http.StatusFound {
		t.Fatalf("consent: %d %s", w.Code, w.Body.String())
	}
	acc := fh.accepted["/admin/oauth2/auth/requests/consent/accept"]
	sess := acc["session"].(map[string]any)
	at := sess["access_token"].(map[string]any)
	if at["department"] != "finance" || !slices.Contains(toStrings(at["permissions"]), "can_approve_invoice") {
		t.Errorf("consent access token claims = %v", at)
	}
	if !slices.Equal(toStrings(acc["grant_scope"]), []string{"openid", "offline_access"}) {
		t.Errorf("granted scope = %v", acc["grant_scope"])
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func hookBody(sub string, grants ...string) io.Reader {
	b, _ := json.Marshal(map[string]any{
		"session": map[string]any{"id_token": map[string]any{"subject": sub}},
		"request": map[string]any{"client_id": "starter", "grant_types": grants},
	})
	return strings.NewReader(string(b))
}

func TestTokenHookFollowsPersonaChanges(t *testing.T) {
	_, _, h := newServer(t)
	key := map[string]string{HookKeyHeader: "hook-key"}
	if w := serve(h, http.MethodPost, "/hooks/token", hookBody("carol", "refresh_token"), nil); w.Code != http.StatusUnauthorized {
		t.Errorf("hook without key: %d", w.Code)
	}
	roles := func() []string {
		w := serve(h, http.MethodPost, "/hooks/token", hookBody("carol", "refresh_token"), key)
		if w.Code != http.StatusOK {
			t.Fatalf("hook: %d %s", w.Code, w.Body.String())
		}
		var out struct {
			Session struct {
				AccessToken struct{ Roles []string } `json:"access_token"`
				IDToken     struct{ Roles []string } `json:"id_token"`
			}
		}
		json.Unmarshal(w.Body.Bytes(), &out)
		if !slices.Equal(out.Session.AccessToken.Roles, out.Session.IDToken.Roles) {
			t.Errorf("access and ID token roles differ")
		}
		return out.Session.AccessToken.Roles
	}
	if got := roles(); !slices.Equal(got, []string{"db-approver"}) {
		t.Fatalf("roles = %v", got)
	}
	p := Persona{Department: "engineering", Roles: []string{}}
	b, _ := json.Marshal(p)
	if w := serve(h, http.MethodPut, "/admin/personas/carol", strings.NewReader(string(b)), jsonBody); w.Code != http.StatusOK {
		t.Fatalf("put persona: %d %s", w.Code, w.Body.String())
	}
	if got := roles(); got == nil || len(got) != 0 {
		t.Errorf("roles after removal = %#v, want an empty list", got)
	}
	if w := serve(h, http.MethodPost, "/hooks/token", hookBody("worker", "client_credentials"), key); w.Code != http.StatusNoContent {
		t.Errorf("client credentials hook: %d", w.Code)
	}
	if w := serve(h, http.MethodPost, "/hooks/token", hookBody("mallory", "refresh_token"), key); w.Code != http.StatusForbidden {
		t.Errorf("unknown subject hook: %d", w.Code)
	}
	if w := serve(h, http.MethodPost, "/admin/reset", nil, jsonBody); w.Code != http.StatusNoContent {
		t.Fatalf("reset: %d", w.Code)
	}
	if got := roles(); !slices.Equal(got, []string{"db-approver"}) {
		t.Errorf("roles after reset = %v", got)
	}
}

func TestAddAndRemovePersona(t *testing.T) {
	_, _, h := newServer(t)
	b, _ := json.Marshal(Persona{Name: "temp-1", Department: "sales", Roles: []string{"engineer"}})
	if w := serve(h, http.MethodPost, "/admin/personas", strings.NewReader(string(b)), jsonBody); w.Code != http.StatusCreated {
		t.Fatalf("add: %d %s", w.Code, w.Body.String())
	}
	if w := serve(h, http.MethodPost, "/admin/personas", strings.NewReader(string(b)), jsonBody); w.Code != http.StatusConflict {
		t.Errorf("duplicate add: %d", w.Code)
	}
	if w := serve(h, http.MethodDelete, "/admin/personas/temp-1", nil, nil); w.Code != http.StatusNoContent {
		t.Errorf("delete: %d", w.Code)
	}
	if w := serve(h, http.MethodGet, "/admin/personas/temp-1", nil, nil); w.Code != http.StatusNotFound {
		t.Errorf("get deleted: %d", w.Code)
	}
}

func FuzzParseFile(f *testing.F) {
	f.Add(DefaultPersonas)
	f.Add([]byte(`{"personas":[{"name":"a","subject":"a"},{"name":"a","subject":"b"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		pf, err := ParseFile(b)
		if err != nil {
			return
		}
		for _, p := range pf.Personas {
			if p.Name == "" || p.Subject == "" {
				t.Fatalf("accepted persona without name or subject: %+v", p)
			}
		}
	})
}

func FuzzTokenHook(f *testing.F) {
	f.Add([]byte(`{"session":{"id_token":{"subject":"bob"}},"request":{"grant_types":["refresh_token"]}}`))
	f.Add([]byte(`{"session":null}`))
	_, _, h := newServer(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		w := serve(h, http.MethodPost, "/hooks/token", strings.NewReader(string(b)), map[string]string{HookKeyHeader: "hook-key"})
		switch w.Code {
		case http.StatusOK, http.StatusNoContent, http.StatusBadRequest, http.StatusForbidden:
		default:
			t.Fatalf("hook answered %d", w.Code)
		}
	})
}

// TestAdminRefusesCrossSite is the attack of a web page, open in the developer's browser,
// that posts to the dev IdP's admin API on loopback: a plain HTML form with
// enctype="text/plain" can send a JSON persona body (name='{"name":"mallory",...,"x":"'
// value='"}'), and any form can POST /admin/reset, with no preflight. Every admin request
// that a browser marks as cross-site or same-site, or whose Origin is not the app's own, is
// refused, and so is a POST or PUT whose body is not declared JSON (no form can declare
// that) and a request whose Host is a DNS name (DNS rebinding makes an attacker's page
// same-origin with a loopback service). Nothing changes.
func TestAdminRefusesCrossSite(t *testing.T) {
	s, _, h := newServer(t)
	mallory := `{"name":"mallory","subject":"mallory","roles":["admin"],"x":"="}`
	carol := `{"department":"engineering","roles":["admin"]}`
	for _, c := range []struct {
		name         string
		method, path string
		body         string
		hdr          map[string]string
	}{
		{"text/plain form, cross-site", "POST", "/admin/personas", mallory,
			map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}},
		{"text/plain form, no Sec-Fetch-Site", "POST", "/admin/personas", mallory,
			map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}},
		{"text/plain form, no Origin", "POST", "/admin/personas", mallory,
			map[string]string{"Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"}},
		{"text/plain form, no browser headers", "POST", "/admin/personas", mallory,
			map[string]string{"Content-Type": "text/plain"}},
		{"urlencoded form", "POST", "/admin/personas", mallory,
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{"multipart form", "POST", "/admin/personas", mallory,
			map[string]string{"Content-Type": "multipart/form-data; boundary=x"}},
		{"no content type", "POST", "/admin/personas", mallory, nil},
		{"JSON from another site", "POST", "/admin/personas", mallory,
			map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}},
		{"JSON from another port (same-site)", "POST", "/admin/personas", mallory,
			map[string]string{"Content-Type": "application/json", "Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-site"}},
		{"JSON, same-site without Origin", "POST", "/admin/personas", mallory,
			map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"}},
		{"JSON, foreign Origin only", "POST", "/admin/personas", mallory,
			map[string]string{"Content-Type": "application/json", "Origin": "http://127.0.0.1:8080"}},
		{"JSON, Origin null (sandboxed frame)", "POST", "/admin/personas", mallory,
			map[string]string{"Content-Type": "application/json", "Origin": "null"}},
		{"JSON, DNS rebinding", "POST", "/admin/personas", mallory,
			map[string]string{"Content-Type": "application/json", "Host": "rebind.evil.example:4446", "Origin": "http://rebind.evil.example:4446", "Sec-Fetch-Site": "same-origin"}},
		{"reset by form", "POST", "/admin/reset", "", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}},
		{"reset without content type", "POST", "/admin/reset", "", nil},
		{"put, text/plain", "PUT", "/admin/personas/carol", carol, map[string]string{"Content-Type": "text/plain"}},
		{"put from another site", "PUT", "/admin/personas/carol", carol,
			map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}},
		{"delete from another site", "DELETE", "/admin/personas/carol", "", map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}},
		{"delete, same-site", "DELETE", "/admin/personas/carol", "", map[string]string{"Sec-Fetch-Site": "same-site"}},
		{"read from another site", "GET", "/admin/personas", "", map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before, err := s.Personas()
			if err != nil {
				t.Fatal(err)
			}
			w := serve(h, c.method, c.path, strings.NewReader(c.body), c.hdr)
			if w.Code != http.StatusForbidden && w.Code != http.StatusUnsupportedMediaType {
				t.Fatalf("%s %s answered %d, want 403 or 415: %s", c.method, c.path, w.Code, w.Body.String())
			}
			after, err := s.Personas()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(before, after) {
				t.Fatal("the refused request changed the personas")
			}
			if _, ok := after.Find("mallory"); ok {
				t.Fatal("mallory was added")
			}
		})
	}
}

// TestAdminAcceptsOwnCalls: the calls the test harness, the CLI tests and the devstack make
// (a Go client: JSON bodies, a bare DELETE, no browser headers, a loopback Host), and the
// app's own origin in a browser, keep working.
func TestAdminAcceptsOwnCalls(t *testing.T) {
	_, _, h := newServer(t)
	const own = "http://127.0.0.1:4446"
	p, _ := json.Marshal(Persona{Name: "temp-2", Department: "sales"})
	put, _ := json.Marshal(Persona{Department: "sales", Roles: []string{"engineer"}})
	for _, c := range []struct {
		name         string
		method, path string
		body         string
		hdr          map[string]string
		want         int
	}{
		{"list", "GET", "/admin/personas", "", nil, http.StatusOK},
		{"list, typed into the address bar", "GET", "/admin/personas", "", map[string]string{"Sec-Fetch-Site": "none"}, http.StatusOK},
		{"add", "POST", "/admin/personas", string(p), map[string]string{"Content-Type": "application/json"}, http.StatusCreated},
		{"get", "GET", "/admin/personas/temp-2", "", nil, http.StatusOK},
		{"put, charset", "PUT", "/admin/personas/temp-2", string(put), map[string]string{"Content-Type": "application/json; charset=utf-8"}, http.StatusOK},
		{"put from the app's own origin", "PUT", "/admin/personas/temp-2", string(put),
			map[string]string{"Content-Type": "application/json", "Origin": own, "Sec-Fetch-Site": "same-origin"}, http.StatusOK},
		{"delete", "DELETE", "/admin/personas/temp-2", "", nil, http.StatusNoContent},
		{"reset", "POST", "/admin/reset", "", map[string]string{"Content-Type": "application/json"}, http.StatusNoContent},
		{"localhost", "GET", "/admin/personas", "", map[string]string{"Host": "localhost:4446"}, http.StatusOK},
		{"IPv6 loopback", "GET", "/admin/personas", "", map[string]string{"Host": "[::1]:4446"}, http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			if w := serve(h, c.method, c.path, strings.NewReader(c.body), c.hdr); w.Code != c.want {
				t.Fatalf("%s %s answered %d, want %d: %s", c.method, c.path, w.Code, c.want, w.Body.String())
			}
		})
	}
	// Over a real connection, as the harness calls it (testharness.Stack.call: JSON bodies,
	// bare DELETE; harness_test's own bare DELETE).
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/admin/personas", string(p), http.StatusCreated},
		{"PUT", "/admin/personas/temp-2", string(put), http.StatusOK},
		{"GET", "/admin/personas/temp-2", "", http.StatusOK},
		{"DELETE", "/admin/personas/temp-2", "", http.StatusNoContent},
	} {
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		req, _ := http.NewRequest(c.method, srv.URL+c.path, body)
		if c.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("%s %s over HTTP: %s, want %d", c.method, c.path, resp.Status, c.want)
		}
	}
	// The login form and the token hook are not admin endpoints: a browser posts the form.
	form := url.Values{"login_challenge": {"c1"}, "persona": {"carol"}}.Encode()
	w := serve(h, http.MethodPost, "/login", strings.NewReader(form), map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://127.0.0.1:4444", "Sec-Fetch-Site": "same-site"})
	if w.Code != http.StatusFound {
		t.Fatalf("login form: %d", w.Code)
	}
}
