package envelope_test

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/oidcflow/oidcflow/interceptors/envelope"
)

func Example() {
	// Worker pool: generate a key pair once, keep its MarshalText in Vault, publish the
	// public key's text form (OIDCFLOW_ENVELOPE_PUBLIC_KEY).
	kp, err := envelope.GenerateKeyPair("2026-02", envelope.KEMHybrid)
	if err != nil {
		panic(err)
	}
	publicText := kp.Public().String()

	// Starter: parse the public key and seal the caller's tokens for one operation.
	pub, err := envelope.ParsePublicKey(publicText)
	if err != nil {
		panic(err)
	}
	// The input digest commits the envelope to the operation's input (the interceptors
	// package computes it from the workflow type or update name and the arguments).
	b := envelope.Binding{Namespace: "oidcflow", WorkflowID: "access-42", Operation: envelope.OpStart}
	digest := sha256.Sum256([]byte(`start AccessRequest {"role":"read"}`))
	sealed, err := envelope.Seal(pub, b, envelope.Contents{
		IDToken: "id-token", AccessToken: "access-token", Expiry: time.Now().Add(time.Hour),
		InputDigest: digest[:]})
	if err != nil {
		panic(err)
	}

	// Worker: open with the keyring and the binding of the request being handled.
	ring, err := envelope.NewKeyring(kp)
	if err != nil {
		panic(err)
	}
	c, err := ring.Open(b, sealed)
	fmt.Println(c.AccessToken == "access-token", c.Version, len(c.ID), err)

	// The same envelope on another workflow does not open.
	b.WorkflowID = "access-43"
	_, err = ring.Open(b, sealed)
	fmt.Println(err)
	// Output:
	// true 2 22 <nil>
	// envelope: does not open: it was sealed for another workflow or operation (or to another key, or altered); start the workflow through oidcflow's client so it is sealed for this one
}
