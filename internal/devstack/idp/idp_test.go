package idp

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
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

func serve(h http.Handler, method, target string, body io.Reader, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

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
	if w := serve(h, http.MethodPut, "/admin/personas/carol", strings.NewReader(string(b)), nil); w.Code != http.StatusOK {
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
	if w := serve(h, http.MethodPost, "/admin/reset", nil, nil); w.Code != http.StatusNoContent {
		t.Fatalf("reset: %d", w.Code)
	}
	if got := roles(); !slices.Equal(got, []string{"db-approver"}) {
		t.Errorf("roles after reset = %v", got)
	}
}

func TestAddAndRemovePersona(t *testing.T) {
	_, _, h := newServer(t)
	b, _ := json.Marshal(Persona{Name: "temp-1", Department: "sales", Roles: []string{"engineer"}})
	if w := serve(h, http.MethodPost, "/admin/personas", strings.NewReader(string(b)), nil); w.Code != http.StatusCreated {
		t.Fatalf("add: %d %s", w.Code, w.Body.String())
	}
	if w := serve(h, http.MethodPost, "/admin/personas", strings.NewReader(string(b)), nil); w.Code != http.StatusConflict {
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
