package payloadcodec

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// fakeTransit wraps data keys with in-memory key versions, as Transit does: ciphertexts
// "vault:v<N>:<base64>", decryption refused (ErrTampered) below minDecrypt or when the
// ciphertext does not authenticate.
type fakeTransit struct {
	mu         sync.Mutex
	name       string
	versions   [][]byte // versions[i] is version i+1
	minDecrypt int
	down       error // returned by every call while set
	dataKeys   int
	unwraps    int
}

func newFakeTransit(name string) *fakeTransit {
	f := &fakeTransit{name: name, minDecrypt: 1}
	f.rotate()
	return f
}

func (f *fakeTransit) rotate() {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	f.versions = append(f.versions, k)
}

func (f *fakeTransit) counts() (dataKeys, unwraps int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dataKeys, f.unwraps
}

func gcm(k []byte) cipher.AEAD {
	b, _ := aes.NewCipher(k)
	a, _ := cipher.NewGCM(b)
	return a
}

func (f *fakeTransit) DataKey(_ context.Context, key string) (*DataKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down != nil {
		return nil, fmt.Errorf("%w: %v", ErrTransit, f.down)
	}
	if key != f.name {
		return nil, fmt.Errorf("%w: no key %s", ErrTransit, key)
	}
	f.dataKeys++
	v := len(f.versions)
	plain := make([]byte, 32)
	_, _ = rand.Read(plain)
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	ct := gcm(f.versions[v-1]).Seal(nonce, nonce, plain, nil)
	return &DataKey{Plaintext: append([]byte(nil), plain...), Wrapped: "vault:v" + strconv.Itoa(v) + ":" + base64.StdEncoding.EncodeToString(ct), Version: v}, nil
}

func (f *fakeTransit) Unwrap(_ context.Context, key, wrapped string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down != nil {
		return nil, fmt.Errorf("%w: %v", ErrTransit, f.down)
	}
	f.unwraps++
	if key != f.name {
		return nil, fmt.Errorf("%w: no key %s", ErrTransit, key)
	}
	rest, _ := strings.CutPrefix(wrapped, "vault:v")
	num, body, _ := strings.Cut(rest, ":")
	v, err := strconv.Atoi(num)
	if err != nil || v < 1 || v > len(f.versions) {
		return nil, fmt.Errorf("%w: invalid ciphertext version", ErrTampered)
	}
	if v < f.minDecrypt {
		return nil, fmt.Errorf("%w: version disallowed by policy", ErrTampered)
	}
	ct, err := base64.StdEncoding.DecodeString(body)
	if err != nil || len(ct) < 12 {
		return nil, fmt.Errorf("%w: invalid ciphertext", ErrTampered)
	}
	plain, err := gcm(f.versions[v-1]).Open(nil, ct[:12], ct[12:], nil)
	if err != nil {
		return nil, fmt.Errorf("%w: message authentication failed", ErrTampered)
	}
	return plain, nil
}
