package devstack

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/oidcflow/oidcflow/internal/devstack/idp"
)

// docker-compose.yml gives each service only the files it needs: the init and seed steps
// write them into composeShare/<service> of the state folder, which compose mounts from a
// volume of that service's own (the service mounts it at ComposeServiceDir). The state folder
// itself (Vault's unseal key and root token, every generated secret, the env file for
// people and tests) is mounted by the init and seed steps only.
const (
	composeShare = "for"
	// ComposeServiceDir is where a compose service finds the files written for it.
	ComposeServiceDir = "/run/oidcflow"
	// ComposeCodecCA is the CA certificate (in the state folder) that signed the codec
	// server's certificate: the browser that opens the Web UI must trust it.
	ComposeCodecCA = "codec-ca.pem"
)

// ComposeUsers are the uid (and gid) each compose service runs as that reads files from
// its own folder; the init and seed steps give those files to it (mode 0600). postgres
// starts as root: its image's entrypoint reads the password file before it drops to the
// postgres user.
var ComposeUsers = map[string]int{
	"postgres": 0,
	"hydra":    10100,
	"temporal": 10200,
	"idp":      10300,
	"codec":    10400,
	"worker":   65532,
}

// composeWorkerEnv and composeCodecEnv list what the seed step passes on to the worker and
// the codec server in their env files: never Vault's root token, never the Web UI's client
// secret (only the temporal service has it).
var (
	composeWorkerEnv = []string{
		EnvTemporalAddress, EnvTemporalNamespace, EnvTemporalUIURL, EnvTaskQueue,
		EnvIssuer, EnvClientID, EnvWorkerClientID, EnvWorkerClientSecret,
		EnvVaultAddr, EnvVaultAuth, EnvVaultRoleID, EnvVaultSecretID, EnvVaultKVMount, EnvVaultTransitKey,
		EnvEnvelopePublicKey, EnvEnvelopeKeysPath, EnvPostgresURL, SettingRefreshGrace,
	}
	composeCodecEnv = []string{
		EnvTemporalAddress, EnvTemporalNamespace, EnvIssuer,
		EnvVaultAddr, EnvVaultAuth, EnvVaultRoleID, EnvVaultSecretID, EnvVaultKVMount,
	}
)

// ComposeInit prepares the state folder for docker-compose.yml before any server starts:
// generated secrets (Hydra's system secret, the token hook key, client secrets, the
// PostgreSQL password), Hydra's configuration (PostgreSQL database "hydra"), the persona
// state of the login/consent app and the codec server's TLS certificate (from a CA of its
// own, ComposeCodecCA). It keeps what exists, and writes each service's files to its folder.
func (l *Launcher) ComposeInit() error {
	for _, d := range []string{"", "hydra", "postgres"} {
		if err := os.MkdirAll(l.path(d), 0o755); err != nil {
			return fmt.Errorf("devstack: %w", err)
		}
	}
	// The seed step keeps Vault's unseal key and root token (init.json) and the worker's
	// AppRole secret id here; it does not create the folder itself.
	if err := os.MkdirAll(l.path("vault"), 0o700); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	for svc := range ComposeUsers {
		if err := l.composeDir(svc); err != nil {
			return err
		}
	}
	var pg pgState
	if err := loadOrCreateJSON(l.path("postgres", "secrets.json"), &pg, func() error {
		pg.Password = randomSecret(16)
		return nil
	}); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	// The postgres image reads POSTGRES_PASSWORD_FILE.
	if err := l.composeFile("postgres", "password", []byte(pg.Password)); err != nil {
		return err
	}
	sec, err := l.hydraSecrets()
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	dsn := (&url.URL{Scheme: "postgres", User: url.UserPassword(PostgresUser, pg.Password),
		Host: hostPort(PortPostgres), Path: "/" + HydraDatabase, RawQuery: "sslmode=disable"}).String()
	b, _ := json.MarshalIndent(HydraConfig(dsn, sec, l.getenv), "", "  ") // YAML is a superset of JSON
	if err := l.composeFile("hydra", "hydra.yaml", b); err != nil {
		return err
	}
	// The login/consent app reads its hook key from this file in compose.
	if err := l.composeFile("idp", "hook-key", []byte(sec.HookKey)); err != nil {
		return err
	}
	state := l.composePath("idp", "personas.json")
	if _, err := os.Stat(state); err != nil {
		if err := l.composeFile("idp", "personas.json", idp.DefaultPersonas); err != nil {
			return err
		}
	}
	// The temporal service's entrypoint puts it into TEMPORAL_UI_AUTH_CLIENT_SECRET.
	if err := l.composeFile("temporal", "ui-client-secret", []byte(sec.UISecret)); err != nil {
		return err
	}
	if err := l.composeCodecTLS(); err != nil {
		return err
	}
	l.printf("compose state prepared in %s", filepath.Clean(l.state))
	return nil
}

// ComposeSeed is Seed for docker-compose.yml: it seeds the servers, writes the env file (in
// the state folder, for people and tests) and the worker's and codec server's env files,
// which hold only what those need (composeWorkerEnv, composeCodecEnv).
func (l *Launcher) ComposeSeed(ctx context.Context) error {
	if err := l.Seed(ctx); err != nil {
		return err
	}
	return l.composeEnvFiles()
}

func (l *Launcher) composeEnvFiles() error {
	for svc, names := range map[string][]string{"worker": composeWorkerEnv, "codec": composeCodecEnv} {
		l.mu.Lock()
		env := map[string]string{}
		for _, n := range names {
			if v, ok := l.env[n]; ok {
				env[n] = v
			}
		}
		l.mu.Unlock()
		b, err := envFile(env)
		if err != nil {
			return err
		}
		if err := l.composeDir(svc); err != nil {
			return err
		}
		if err := l.composeFile(svc, "env", b); err != nil {
			return err
		}
	}
	return nil
}

func (l *Launcher) composePath(svc string, elem ...string) string {
	return l.path(append([]string{composeShare, svc}, elem...)...)
}

// composeDir creates the folder of svc's files, owned by its user, mode 0700.
func (l *Launcher) composeDir(svc string) error {
	dir := l.composePath(svc)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	return l.chownTo(svc, dir)
}

// composeFile writes one of svc's files: mode 0600, owned by its user.
func (l *Launcher) composeFile(svc, name string, data []byte) error {
	p := l.composePath(svc, name)
	if err := writeSecretFile(p, data); err != nil {
		return err
	}
	return l.chownTo(svc, p)
}

func (l *Launcher) chownTo(svc, path string) error {
	uid, ok := ComposeUsers[svc]
	if !ok {
		return fmt.Errorf("devstack: compose service %q has no user", svc)
	}
	chown := l.chown
	if chown == nil {
		chown = os.Lchown
	}
	if err := chown(path, uid, uid); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	return nil
}

// composeCodecTLS creates the codec server's CA (kept in the state folder, its certificate
// also in ComposeCodecCA) once, and a certificate for Host from it when there is none or it
// expires within 30 days. The codec server runs on https:// because the Web UI sends the
// user's access token only to an https codec endpoint.
func (l *Launcher) composeCodecTLS() error {
	caKeyPath, caPath := l.path("codec-ca.key"), l.path(ComposeCodecCA)
	caKey, caCert, err := loadCA(caKeyPath, caPath)
	if err != nil {
		caKey, caCert, err = newCA()
		if err != nil {
			return err
		}
		kb, err := x509.MarshalPKCS8PrivateKey(caKey)
		if err != nil {
			return fmt.Errorf("devstack: %w", err)
		}
		if err := writeSecretFile(caKeyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})); err != nil {
			return err
		}
		if err := os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}), 0o644); err != nil {
			return fmt.Errorf("devstack: %w", err)
		}
	}
	if b, err := os.ReadFile(l.composePath("codec", "tls.crt")); err == nil {
		if blk, _ := pem.Decode(b); blk != nil {
			if c, err := x509.ParseCertificate(blk.Bytes); err == nil && c.CheckSignatureFrom(caCert) == nil &&
				time.Until(c.NotAfter) > 30*24*time.Hour {
				return nil
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "oidcflow codec server"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP(Host)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	if err := l.composeFile("codec", "tls.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})); err != nil {
		return err
	}
	return l.composeFile("codec", "tls.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func newCA() (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("devstack: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "oidcflow compose dev CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("devstack: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("devstack: %w", err)
	}
	return key, cert, nil
}

func loadCA(keyPath, certPath string) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	kblk, _ := pem.Decode(kb)
	cblk, _ := pem.Decode(cb)
	if kblk == nil || cblk == nil {
		return nil, nil, errors.New("devstack: codec CA: not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(kblk.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("devstack: codec CA: not an ECDSA key")
	}
	cert, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return key, cert, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
