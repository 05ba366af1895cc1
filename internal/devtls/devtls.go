// Package devtls makes the dev stack's TLS files: a local certificate authority and a
// loopback server certificate signed by it (127.0.0.1, ::1 and localhost), both ECDSA P-256.
// The codec server needs TLS because the Temporal Web UI sends access tokens only to https
// codec endpoints; starters trust ca.pem (OIDCFLOW_CODEC_CA_FILE), and a browser that is to
// call the codec directly must trust it too.
//
// Ensure is idempotent: files that are valid (parse, match, signed by the CA, cover the
// loopback names, and not within RenewBefore of expiry) are kept. The private keys are
// written with mode 0600. It is for development only: nothing restricts what the CA may sign.
package devtls

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// File names in the folder Ensure manages.
const (
	CAFile   = "ca.pem"
	CAKey    = "ca-key.pem"
	CertFile = "cert.pem"
	KeyFile  = "key.pem"
)

// Lifetimes and renewal.
const (
	CALifetime   = 5 * 365 * 24 * time.Hour
	CertLifetime = 365 * 24 * time.Hour
	// RenewBefore: a certificate that expires within it is replaced.
	RenewBefore = 30 * 24 * time.Hour
)

// DNSNames and IPs are what the server certificate covers.
var (
	DNSNames = []string{"localhost"}
	IPs      = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
)

// Files are the paths Ensure wrote or kept.
type Files struct {
	// CA is the certificate authority's certificate: what clients trust.
	CA string
	// CAKey is its private key (mode 0600).
	CAKey string
	// Cert and Key are the server's certificate (leaf, then the CA) and private key (mode
	// 0600), for tls.LoadX509KeyPair or http.Server.ServeTLS.
	Cert, Key string
	// Created reports whether Ensure made anything new.
	Created bool
}

// FilesIn returns the paths of the files in dir, without touching them.
func FilesIn(dir string) Files {
	return Files{
		CA: filepath.Join(dir, CAFile), CAKey: filepath.Join(dir, CAKey),
		Cert: filepath.Join(dir, CertFile), Key: filepath.Join(dir, KeyFile),
	}
}

// Ensure makes dir (mode 0700) and the CA and server certificate in it, keeping what is
// still valid.
func Ensure(dir string) (Files, error) {
	return ensureAt(dir, time.Now())
}

func ensureAt(dir string, now time.Time) (Files, error) {
	f := FilesIn(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, fmt.Errorf("devtls: %w", err)
	}
	ca, caKey, err := loadPair(f.CA, f.CAKey)
	if err != nil || !ca.IsCA || !valid(ca, now) {
		if ca, caKey, err = newCA(now); err != nil {
			return f, err
		}
		if err := writePair(f.CA, f.CAKey, caKey, ca); err != nil {
			return f, err
		}
		f.Created = true
	}
	leaf, _, err := loadPair(f.Cert, f.Key)
	if err == nil && valid(leaf, now) && covers(leaf) && leaf.CheckSignatureFrom(ca) == nil {
		return f, nil
	}
	leaf, key, err := newLeaf(ca, caKey, now)
	if err != nil {
		return f, err
	}
	if err := writePair(f.Cert, f.Key, key, leaf, ca); err != nil {
		return f, err
	}
	f.Created = true
	return f, nil
}

// CertPool returns a pool holding the CA certificate of files (for clients).
func (f Files) CertPool() (*x509.CertPool, error) {
	b, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("devtls: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("devtls: %s holds no certificate", f.CA)
	}
	return p, nil
}

func valid(c *x509.Certificate, now time.Time) bool {
	return !now.Before(c.NotBefore) && now.Add(RenewBefore).Before(c.NotAfter)
}

func covers(c *x509.Certificate) bool {
	for _, n := range DNSNames {
		if c.VerifyHostname(n) != nil {
			return false
		}
	}
	for _, ip := range IPs {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("devtls: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "oidcflow dev CA", Organization: []string{"oidcflow dev stack"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return sign(tmpl, tmpl, key, key)
}

func newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("devtls: %w", err)
	}
	notAfter := now.Add(CertLifetime)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"oidcflow dev stack"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     DNSNames,
		IPAddresses:  IPs,
	}
	c, _, err := sign(tmpl, ca, key, caKey)
	return c, key, err
}

func sign(tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("devtls: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("devtls: %w", err)
	}
	return c, key, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// loadPair reads a certificate file (its first certificate) and its ECDSA key, and checks
// that they belong together.
func loadPair(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	cblock, _ := pem.Decode(cb)
	kblock, _ := pem.Decode(kb)
	if cblock == nil || kblock == nil || cblock.Type != "CERTIFICATE" {
		return nil, nil, errors.New("devtls: not PEM")
	}
	c, err := x509.ParseCertificate(cblock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	k, err := x509.ParseECPrivateKey(kblock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	if !k.PublicKey.Equal(c.PublicKey) {
		return nil, nil, errors.New("devtls: key does not match certificate")
	}
	return c, k, nil
}

// writePair writes the key (0600) first, then the certificate chain, each atomically.
func writePair(certPath, keyPath string, key *ecdsa.PrivateKey, chain ...*x509.Certificate) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("devtls: %w", err)
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	var b bytes.Buffer
	for _, c := range chain {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return writeFile(certPath, b.Bytes(), 0o644)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("devtls: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("devtls: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("devtls: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("devtls: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("devtls: %w", err)
	}
	return nil
}
