// Package idp is the dev stack's login/consent app for Ory Hydra: it logs in dev personas
// read from a JSON file (password-less: pick one on a page), consents automatically, puts
// the persona's claims into ID and access tokens, and recomputes them at every token issue
// and refresh through Hydra's token hook (oauth2.token_hook), so a role removed here shows
// in the next refreshed token.
//
// It is for development and tests only: there are no passwords, and the admin API that
// changes personas has no authentication (it binds to loopback). What it does refuse are
// admin requests a web page in the developer's browser could make (see Handler).
//
// Hydra's login and consent flow: https://www.ory.sh/docs/hydra/concepts/login and
// https://www.ory.sh/docs/hydra/concepts/consent. Token hook:
// https://www.ory.sh/docs/hydra/guides/claims-at-refresh.
package idp

import (
	"bytes"
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultPersonas is the committed persona file (personas.json in this folder).
//
//go:embed personas.json
var DefaultPersonas []byte

// HookKeyHeader carries the shared key Hydra sends to the token hook.
const HookKeyHeader = "X-Oidcflow-Hook-Key"

// ClaimNames are the custom claims put into ID and access tokens.
var ClaimNames = []string{"name", "email", "email_verified", "roles", "permissions", "department", "groups"}

// Persona is one dev user.
type Persona struct {
	Name        string   `json:"name"`
	Subject     string   `json:"subject"`
	DisplayName string   `json:"display_name"`
	Email       string   `json:"email"`
	Department  string   `json:"department"`
	Roles       []string `json:"roles"`
	Permissions []string `json:"permissions"`
	Groups      []string `json:"groups"`
}

// Hierarchy is the nested-role configuration that goes with the personas: roles implied by
// roles and by groups. The app does not expand roles itself (tokens carry the raw roles);
// verifiers apply it.
type Hierarchy struct {
	RoleImplies  map[string][]string `json:"role_implies"`
	GroupImplies map[string][]string `json:"group_implies"`
}

// File is the persona file.
type File struct {
	Hierarchy Hierarchy `json:"hierarchy"`
	Personas  []Persona `json:"personas"`
	// Clients are the claims of client credentials tokens, by client id: the permissions
	// of the worker and operator clients towards Temporal. A client not named here gets
	// tokens without them.
	Clients map[string]ClientClaims `json:"clients,omitempty"`
}

// ClientClaims are the custom claims of one client's client credentials tokens.
type ClientClaims struct {
	Permissions []string `json:"permissions"`
}

// Find returns the persona called name, or whose subject is name.
func (f *File) Find(name string) (Persona, bool) {
	for _, p := range f.Personas {
		if p.Name == name || p.Subject == name {
			return p, true
		}
	}
	return Persona{}, false
}

// ParseFile parses and checks a persona file.
func ParseFile(b []byte) (*File, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("idp: persona file: %w", err)
	}
	seen := map[string]bool{}
	for i, p := range f.Personas {
		if p.Name == "" || p.Subject == "" {
			return nil, fmt.Errorf("idp: persona %d: name and subject are required", i)
		}
		if seen[p.Name] || seen[p.Subject] {
			return nil, fmt.Errorf("idp: persona %q: duplicate name or subject", p.Name)
		}
		seen[p.Name], seen[p.Subject] = true, true
	}
	return &f, nil
}

// Claims returns the token claims of p. Empty lists are present as [] so that a removed
// role shows as an empty list, not a missing claim.
func Claims(p Persona) map[string]any {
	return map[string]any{
		"name": p.DisplayName, "email": p.Email, "email_verified": true,
		"roles": nonNil(p.Roles), "permissions": nonNil(p.Permissions),
		"department": p.Department, "groups": nonNil(p.Groups),
	}
}

// Options configure a Server.
type Options struct {
	// HydraAdminURL is Hydra's admin API base URL. Required.
	HydraAdminURL string
	// StatePath is the persona file the app reads at every request and writes on admin
	// changes. Required; created from Defaults when missing.
	StatePath string
	// Defaults is the persona file used to create StatePath and by POST /admin/reset.
	// Default: DefaultPersonas.
	Defaults []byte
	// HookKey, when set, must be presented by Hydra in HookKeyHeader on the token hook.
	// Default: empty (hook unauthenticated).
	HookKey string
	// Logger receives request logs. Default: slog.Default().
	Logger *slog.Logger
	// HTTPClient calls Hydra's admin API. Default: a client with a 10s timeout.
	HTTPClient *http.Client
}

// Server is the login/consent app.
type Server struct {
	o  Options
	mu sync.Mutex
}

// New returns a Server.
func New(o Options) (*Server, error) {
	if o.HydraAdminURL == "" || o.StatePath == "" {
		return nil, errors.New("idp: HydraAdminURL and StatePath are required")
	}
	if o.Defaults == nil {
		o.Defaults = DefaultPersonas
	}
	if _, err := ParseFile(o.Defaults); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	o.HydraAdminURL = strings.TrimRight(o.HydraAdminURL, "/")
	s := &Server{o: o}
	if _, err := os.Stat(o.StatePath); errors.Is(err, os.ErrNotExist) {
		if err := s.write(o.Defaults); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Handler serves the app:
//
//	GET  /healthz                  liveness
//	GET  /login?login_challenge=   persona picker;  POST /login accepts the pick
//	GET  /consent?consent_challenge= auto-consent with the persona's claims
//	GET  /logout?logout_challenge= auto-accept
//	POST /hooks/token              Hydra's token hook (every grant, refresh included)
//	GET  /admin/personas           the current persona file
//	GET|PUT /admin/personas/{name} read or replace one persona (name and subject kept)
//	POST /admin/personas           add a persona (for tests that change one)
//	DELETE /admin/personas/{name}  remove a persona (its next refresh is refused)
//	POST /admin/reset              restore the committed personas
//
// The /admin/ endpoints refuse what a web page open in the developer's browser could send
// them (a plain HTML form needs no preflight, and enctype="text/plain" can carry a JSON
// persona): a request whose Sec-Fetch-Site is cross-site or same-site, whose Origin is not
// the app's own, whose Host is a DNS name other than localhost (DNS rebinding would make an
// attacker's page same-origin with the app), and a POST or PUT whose body is not declared
// Content-Type: application/json, which no form can send (POST /admin/reset too, with an
// empty body). Programs (curl, Go clients) send none of the browser headers and work as
// before, given that content type. The login form and the token hook are not admin
// endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.loginSubmit)
	mux.HandleFunc("GET /consent", s.consent)
	mux.HandleFunc("GET /logout", s.logout)
	mux.HandleFunc("POST /hooks/token", s.tokenHook)
	mux.HandleFunc("GET /admin/personas", adminOnly(s.adminList))
	mux.HandleFunc("GET /admin/personas/{name}", adminOnly(s.adminGet))
	mux.HandleFunc("PUT /admin/personas/{name}", adminOnly(s.adminPut))
	mux.HandleFunc("POST /admin/personas", adminOnly(s.adminCreate))
	mux.HandleFunc("DELETE /admin/personas/{name}", adminOnly(s.adminDelete))
	mux.HandleFunc("POST /admin/reset", adminOnly(s.adminReset))
	return mux
}

// adminOnly serves h only for requests that no other web page can have sent through the
// developer's browser (see Handler); it answers 403 or 415 otherwise.
func adminOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if code, why := refuseCrossSite(r); code != 0 {
			http.Error(w, "idp: admin request refused: "+why, code)
			return
		}
		h(w, r)
	}
}

// refuseCrossSite returns the status and reason to refuse an admin request with, or 0.
func refuseCrossSite(r *http.Request) (int, string) {
	if !localHost(r.Host) {
		return http.StatusForbidden, "the Host is a DNS name (DNS rebinding?); call the app at its loopback address, e.g. http://127.0.0.1:4446"
	}
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return http.StatusForbidden, "the browser marks it Sec-Fetch-Site: " + site + ", not from this app"
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		own := "http://" + r.Host
		if r.TLS != nil {
			own = "https://" + r.Host
		}
		if !strings.EqualFold(origin, own) {
			return http.StatusForbidden, "it comes from another origin than this app's"
		}
	}
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			return http.StatusUnsupportedMediaType, "send it with Content-Type: application/json (which no HTML form can)"
		}
	}
	return 0, ""
}

// localHost reports whether a Host header names an IP address or localhost: what a DNS
// rebinding attack cannot produce.
func localHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return host == "localhost" || strings.HasSuffix(host, ".localhost") || net.ParseIP(host) != nil
}

// Personas reads the current persona file.
func (s *Server) Personas() (*File, error) {
	b, err := os.ReadFile(s.o.StatePath)
	if err != nil {
		return nil, fmt.Errorf("idp: %w", err)
	}
	return ParseFile(b)
}

func (s *Server) write(b []byte) error {
	if err := os.MkdirAll(filepath.Dir(s.o.StatePath), 0o755); err != nil {
		return fmt.Errorf("idp: %w", err)
	}
	tmp := s.o.StatePath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("idp: %w", err)
	}
	if err := os.Rename(tmp, s.o.StatePath); err != nil {
		return fmt.Errorf("idp: %w", err)
	}
	return nil
}

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>oidcflow dev login</title>
<style>body{font-family:sans-serif;max-width:40em;margin:3em auto}button{display:block;width:100%;margin:.4em 0;padding:.6em;text-align:left}</style>
</head><body>
<h1>oidcflow dev login</h1>
<p>Development only: pick a persona (no password). Client: <code>{{.Client}}</code></p>
<form method="post" action="/login">
<input type="hidden" name="login_challenge" value="{{.Challenge}}">
{{range .Personas}}<button type="submit" name="persona" value="{{.Name}}"><b>{{.DisplayName}}</b> ({{.Name}}) — {{.Department}}; roles: {{range .Roles}}{{.}} {{else}}none {{end}}{{if .Groups}}; groups: {{range .Groups}}{{.}} {{end}}{{end}}</button>
{{end}}</form></body></html>
`))

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("login_challenge")
	if challenge == "" {
		http.Error(w, "missing login_challenge", http.StatusBadRequest)
		return
	}
	var req struct {
		Skip    bool   `json:"skip"`
		Subject string `json:"subject"`
		Client  struct {
			ClientID string `json:"client_id"`
		} `json:"client"`
	}
	if err := s.hydra(r.Context(), http.MethodGet, "/admin/oauth2/auth/requests/login", "login_challenge", challenge, nil, &req); err != nil {
		s.fail(w, "login request", err)
		return
	}
	if req.Skip {
		s.acceptLogin(w, r, challenge, req.Subject)
		return
	}
	f, ok := s.personas(w)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = loginTmpl.Execute(w, map[string]any{"Challenge": challenge, "Client": req.Client.ClientID, "Personas": f.Personas})
}

func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	challenge, name := r.FormValue("login_challenge"), r.FormValue("persona")
	f, ok := s.personas(w)
	if !ok {
		return
	}
	p, ok := f.Find(name)
	if !ok || challenge == "" {
		http.Error(w, "unknown persona or missing login_challenge", http.StatusBadRequest)
		return
	}
	s.acceptLogin(w, r, challenge, p.Subject)
}

func (s *Server) acceptLogin(w http.ResponseWriter, r *http.Request, challenge, subject string) {
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	body := map[string]any{"subject": subject, "remember": false, "acr": "0"}
	if err := s.hydra(r.Context(), http.MethodPut, "/admin/oauth2/auth/requests/login/accept", "login_challenge", challenge, body, &out); err != nil {
		s.fail(w, "accept login", err)
		return
	}
	s.o.Logger.Info("idp: login accepted", "subject", subject)
	http.Redirect(w, r, out.RedirectTo, http.StatusFound)
}

func (s *Server) consent(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("consent_challenge")
	if challenge == "" {
		http.Error(w, "missing consent_challenge", http.StatusBadRequest)
		return
	}
	var req struct {
		Subject        string   `json:"subject"`
		RequestedScope []string `json:"requested_scope"`
		RequestedAud   []string `json:"requested_access_token_audience"`
		Client         struct {
			Audience []string `json:"audience"`
		} `json:"client"`
	}
	if err := s.hydra(r.Context(), http.MethodGet, "/admin/oauth2/auth/requests/consent", "consent_challenge", challenge, nil, &req); err != nil {
		s.fail(w, "consent request", err)
		return
	}
	f, ok := s.personas(w)
	if !ok {
		return
	}
	p, ok := f.Find(req.Subject)
	if !ok {
		http.Error(w, "unknown subject", http.StatusForbidden)
		return
	}
	claims := Claims(p)
	body := map[string]any{
		"grant_scope":                 nonNil(req.RequestedScope),
		"grant_access_token_audience": grantAudience(req.RequestedAud, req.Client.Audience),
		"remember":                    false,
		"session":                     map[string]any{"id_token": claims, "access_token": claims},
	}
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := s.hydra(r.Context(), http.MethodPut, "/admin/oauth2/auth/requests/consent/accept", "consent_challenge", challenge, body, &out); err != nil {
		s.fail(w, "accept consent", err)
		return
	}
	http.Redirect(w, r, out.RedirectTo, http.StatusFound)
}

// grantAudience is the audience of a person's access token: what the client asked for, and
// every audience the client is registered with (the Temporal frontend's), so that clients
// that cannot send Hydra's audience parameter (the Temporal Web UI) still get tokens the
// frontend accepts.
func grantAudience(requested, client []string) []string {
	out := slices.Clone(nonNil(requested))
	for _, a := range client {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("logout_challenge")
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := s.hydra(r.Context(), http.MethodPut, "/admin/oauth2/auth/requests/logout/accept", "logout_challenge", challenge, nil, &out); err != nil {
		s.fail(w, "accept logout", err)
		return
	}
	http.Redirect(w, r, out.RedirectTo, http.StatusFound)
}

// hookRequest is the part of Hydra's token hook body the app reads.
type hookRequest struct {
	Session struct {
		IDToken struct {
			Subject string `json:"subject"`
			Claims  struct {
				Subject string `json:"sub"`
			} `json:"id_token_claims"`
		} `json:"id_token"`
	} `json:"session"`
	Request struct {
		ClientID   string   `json:"client_id"`
		GrantTypes []string `json:"grant_types"`
	} `json:"request"`
}

// tokenHook answers Hydra's token hook with the persona's current claims. Client
// credentials grants are left unchanged (204); an unknown subject is refused (403, which
// Hydra turns into access_denied), so a removed persona cannot refresh.
func (s *Server) tokenHook(w http.ResponseWriter, r *http.Request) {
	if s.o.HookKey != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get(HookKeyHeader)), []byte(s.o.HookKey)) != 1 {
		http.Error(w, "bad hook key", http.StatusUnauthorized)
		return
	}
	var req hookRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, "bad hook body", http.StatusBadRequest)
		return
	}
	if slices.Contains(req.Request.GrantTypes, "client_credentials") {
		s.clientHook(w, req.Request.ClientID)
		return
	}
	sub := req.Session.IDToken.Subject
	if sub == "" {
		sub = req.Session.IDToken.Claims.Subject
	}
	f, ok := s.personas(w)
	if !ok {
		return
	}
	p, ok := f.Find(sub)
	if !ok {
		s.o.Logger.Warn("idp: token hook refused unknown subject", "subject", sub, "client_id", req.Request.ClientID)
		http.Error(w, "unknown subject", http.StatusForbidden)
		return
	}
	claims := Claims(p)
	s.o.Logger.Info("idp: token hook", "subject", sub, "client_id", req.Request.ClientID, "grant_types", req.Request.GrantTypes, "roles", p.Roles)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"session": map[string]any{"access_token": claims, "id_token": claims}})
}

// clientHook answers the token hook of a client credentials grant: the client's claims from
// the persona file, or 204 (the token unchanged) for a client it does not name.
func (s *Server) clientHook(w http.ResponseWriter, clientID string) {
	f, ok := s.personas(w)
	if !ok {
		return
	}
	c, ok := f.Clients[clientID]
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.o.Logger.Info("idp: token hook", "client_id", clientID, "grant_types", []string{"client_credentials"}, "permissions", c.Permissions)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"session": map[string]any{
		"access_token": map[string]any{"permissions": nonNil(c.Permissions)}}})
}

func (s *Server) adminList(w http.ResponseWriter, r *http.Request) {
	f, ok := s.personas(w)
	if !ok {
		return
	}
	writeJSON(w, f)
}

func (s *Server) adminGet(w http.ResponseWriter, r *http.Request) {
	f, ok := s.personas(w)
	if !ok {
		return
	}
	p, ok := f.Find(r.PathValue("name"))
	if !ok {
		http.Error(w, "unknown persona", http.StatusNotFound)
		return
	}
	writeJSON(w, p)
}

// adminPut replaces a persona's attributes; its name and subject never change.
func (s *Server) adminPut(w http.ResponseWriter, r *http.Request) {
	in, ok := decodePersona(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.personas(w)
	if !ok {
		return
	}
	name := r.PathValue("name")
	i := slices.IndexFunc(f.Personas, func(p Persona) bool { return p.Name == name || p.Subject == name })
	if i < 0 {
		http.Error(w, "unknown persona", http.StatusNotFound)
		return
	}
	in.Name, in.Subject = f.Personas[i].Name, f.Personas[i].Subject
	f.Personas[i] = in
	if !s.save(w, f) {
		return
	}
	s.o.Logger.Info("idp: persona changed", "persona", in.Name, "roles", in.Roles, "permissions", in.Permissions, "groups", in.Groups)
	writeJSON(w, in)
}

func (s *Server) adminCreate(w http.ResponseWriter, r *http.Request) {
	in, ok := decodePersona(w, r)
	if !ok {
		return
	}
	if in.Subject == "" {
		in.Subject = in.Name
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.personas(w)
	if !ok {
		return
	}
	f.Personas = append(f.Personas, in)
	b, _ := json.MarshalIndent(f, "", "  ")
	if _, err := ParseFile(b); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	if err := s.write(b); err != nil {
		s.fail(w, "write personas", err)
		return
	}
	s.o.Logger.Info("idp: persona added", "persona", in.Name)
	w.WriteHeader(http.StatusCreated)
	writeJSON(w, in)
}

func (s *Server) adminDelete(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.personas(w)
	if !ok {
		return
	}
	name := r.PathValue("name")
	n := len(f.Personas)
	f.Personas = slices.DeleteFunc(f.Personas, func(p Persona) bool { return p.Name == name })
	if len(f.Personas) == n {
		http.Error(w, "unknown persona", http.StatusNotFound)
		return
	}
	if !s.save(w, f) {
		return
	}
	s.o.Logger.Info("idp: persona removed", "persona", name)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminReset(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.write(s.o.Defaults); err != nil {
		s.fail(w, "reset personas", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// hydra calls Hydra's admin API with one query parameter and an optional JSON body.
func (s *Server) hydra(ctx context.Context, method, path, qk, qv string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	u := s.o.HydraAdminURL + path + "?" + url.Values{qk: {qv}}.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.o.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("hydra %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

// personas reads the persona file for a handler; on failure it has answered the request.
func (s *Server) personas(w http.ResponseWriter) (*File, bool) {
	f, err := s.Personas()
	if err != nil {
		s.fail(w, "personas", err)
		return nil, false
	}
	return f, true
}

// save writes f as the persona file for an admin handler (which holds s.mu); on failure it
// has answered the request.
func (s *Server) save(w http.ResponseWriter, f *File) bool {
	b, _ := json.MarshalIndent(f, "", "  ")
	if err := s.write(b); err != nil {
		s.fail(w, "write personas", err)
		return false
	}
	return true
}

// decodePersona reads a persona from an admin request's body; on failure it has answered
// the request.
func decodePersona(w http.ResponseWriter, r *http.Request) (Persona, bool) {
	var in Persona
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil {
		http.Error(w, "bad persona: "+err.Error(), http.StatusBadRequest)
		return Persona{}, false
	}
	return in, true
}

func (s *Server) fail(w http.ResponseWriter, what string, err error) {
	s.o.Logger.Error("idp: "+what, "err", err)
	http.Error(w, "idp: "+what+" failed", http.StatusBadGateway)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
