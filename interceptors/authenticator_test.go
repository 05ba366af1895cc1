package interceptors

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors/envelope"
)

// keptStore is a SessionStore whose one session holds raw, kept until keptUntil.
type keptStore struct {
	raw       string
	keptUntil time.Time
}

func (s keptStore) Deposit(context.Context, *identity.Identity, *oauth2.Token, string) (string, error) {
	return "", errors.New("not here")
}

func (s keptStore) CurrentIDToken(context.Context, string) (string, time.Time, error) {
	return s.raw, s.keptUntil, nil
}

func (s keptStore) End(context.Context, string, string) error { return nil }

// es256 signs claims as a compact JWS with key kid "k1".
func es256(t *testing.T, key *ecdsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(map[string]string{"alg": "ES256", "kid": "k1", "typ": "JWT"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// An identity provider that renews a session without ID tokens (OIDC Core 12.2) leaves the
// session's ID token past its exp. Resume accepts it while the session vouches for it (the
// refresher re-checked the person through userinfo, until the access token's expiry), and
// only then. Before, Resume verified it like any ID token and every activity of the run
// failed with TokenExpired once the kept token's exp passed.
func TestResumeKeptIDToken(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	v, err := identity.NewVerifier(context.Background(), identity.VerifierOptions{
		Issuer: "https://idp.example", ClientID: "starter",
		StaticKeys: map[string]crypto.PublicKey{"k1": key.Public()},
		Now:        func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"iss": "https://idp.example", "sub": "bob", "aud": "starter",
		"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix(), "roles": []string{"engineer"}}
	expired := es256(t, key, claims)
	claims["sub"] = "mallory"
	forged := es256(t, key, claims)
	forged = forged[:len(forged)-8] + "AAAAAAAA"
	until := now.Add(5 * time.Minute)

	var te *identity.TokenExpiredError
	for _, c := range []struct {
		name  string
		store keptStore
		check func(t *testing.T, id *identity.Identity, err error)
	}{
		{"kept, vouched for", keptStore{expired, until}, func(t *testing.T, id *identity.Identity, err error) {
			if err != nil || id.Subject != "bob" || !id.HasRole("engineer") || !id.Expiry.Equal(until) {
				t.Fatalf("Resume = %+v, %v; want bob until %v", id, err, until)
			}
		}},
		{"not kept: an expired token stays expired", keptStore{expired, time.Time{}}, func(t *testing.T, id *identity.Identity, err error) {
			if !errors.As(err, &te) {
				t.Fatalf("Resume = %+v, %v; want TokenExpiredError", id, err)
			}
		}},
		{"kept, vouching over", keptStore{expired, now.Add(-5 * time.Minute)}, func(t *testing.T, id *identity.Identity, err error) {
			if !errors.As(err, &te) {
				t.Fatalf("Resume = %+v, %v; want TokenExpiredError", id, err)
			}
		}},
		{"kept, bad signature", keptStore{forged, until}, func(t *testing.T, id *identity.Identity, err error) {
			if !errors.Is(err, identity.ErrUnauthenticated) {
				t.Fatalf("Resume = %+v, %v; want ErrUnauthenticated", id, err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			auth, err := NewAuthenticator(AuthenticatorOptions{Keyring: &envelope.Keyring{}, Verifier: v, Sessions: c.store,
				OneTime: &fakeAuth{}})
			if err != nil {
				t.Fatal(err)
			}
			id, err := auth.Resume(context.Background(), "session-1")
			c.check(t, id, err)
		})
	}
}

// TestEnvelopeCommitments: each commitment of an envelope is checked against the operation
// it arrived with, and tokens are judged at the server's time (a start) or at the sealing
// time within the run's life (an update or signal bound to its run).
func TestEnvelopeCommitments(t *testing.T) {
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	digest := sha256.Sum256([]byte("input"))
	a := &authenticator{AuthenticatorOptions{MaxAge: 5 * time.Minute, MaxBacklog: time.Hour, Leeway: time.Minute}}
	op := func(at time.Time) Operation {
		return Operation{RunID: "run-1", RunStart: start, At: at, Digest: digest[:]}
	}
	env := func(run string, issued time.Time) envelope.Contents {
		return envelope.Contents{Version: 2, RunID: run, IssuedAt: issued, InputDigest: digest[:]}
	}
	other := sha256.Sum256([]byte("other"))
	for _, c := range []struct {
		name   string
		op     Operation
		c      envelope.Contents
		want   error
		wantAt time.Time
	}{
		{"start, judged at the server's time", op(start), env("", start.Add(-time.Minute)), nil, start},
		{"start after a backlog", op(start), env("", start.Add(-time.Minute)), nil, start},
		{"format 1", op(start), envelope.Contents{Version: 1}, ErrLegacyEnvelope, time.Time{}},
		{"other input", op(start), envelope.Contents{Version: 2, IssuedAt: start, InputDigest: other[:]}, ErrInputChanged, time.Time{}},
		{"other run", op(start.Add(time.Hour)), env("run-0", start.Add(time.Hour)), ErrOtherRun, time.Time{}},
		{"start sealed too long before", op(start), env("", start.Add(-6*time.Minute)), ErrStaleEnvelope, time.Time{}},
		{"sealed in the future", op(start), env("", start.Add(2*time.Minute)), ErrStaleEnvelope, time.Time{}},
		{"unbound update, late", op(start.Add(time.Hour)), env("", start.Add(50*time.Minute)), ErrStaleEnvelope, time.Time{}},
		{"bound update after a backlog", op(start.Add(50 * time.Minute)), env("run-1", start.Add(10*time.Minute)), nil, start.Add(10 * time.Minute)},
		{"bound update past the backlog", op(start.Add(2 * time.Hour)), env("run-1", start.Add(10*time.Minute)), ErrStaleEnvelope, time.Time{}},
		{"bound update sealed before the run", op(start.Add(time.Minute)), env("run-1", start.Add(-2*time.Minute)), ErrStaleEnvelope, time.Time{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			at, err := a.check(c.op, c.c)
			if !errors.Is(err, c.want) || (c.want == nil && !at.Equal(c.wantAt)) {
				t.Fatalf("check = %v, %v; want %v, %v", at, err, c.wantAt, c.want)
			}
			if c.want != nil && !errors.Is(err, identity.ErrUnauthenticated) {
				t.Fatalf("%v is not an identity error", err)
			}
		})
	}
}
