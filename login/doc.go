// Package login is the client side of oidcflow: a person's OIDC login, kept on disk, and a
// Temporal client that carries it to the worker pool. Starting a workflow as the person
// who ran `starter login` takes a few lines:
//
//	ts, err := login.Open(ctx, login.Options{Issuer: issuer}) // the cached login
//	c, err := login.Dial(ctx, login.DialOptions{Source: ts, PublicKey: poolPublicKey,
//		Client: client.Options{HostPort: "127.0.0.1:7233", Namespace: "oidcflow"}})
//	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "deploy"}, "DeployApproval", in)
//
// The session lives in one JSON file (Cache), by default in the user's config folder
// (os.UserConfigDir()/oidcflow/tokens.json, where `starter login` writes it), mode 0600 in a
// 0700 folder, written atomically (temp file + rename), with its format (CacheFormat). A
// file of a newer format, which a newer version wrote, is not read at all: no token of it is
// used, refreshed or revoked (ErrUnsupportedFormat). Login runs the authorization code
// flow with PKCE and saves a new one. A TokenSource refreshes the session through the IdP
// when its access or ID token is about to expire and writes the rotated refresh token back
// before it returns, because a refresh token is single-use at most IdPs (Ory Hydra revokes
// the whole chain when a used one comes back; RFC 9700 section 4.14.2).
//
// A start hands the refresh token to the worker pool, which keeps the session alive from then
// on. Dial records that hand-over in the cache (Session.HandedOver), and the TokenSource then
// never refreshes or revokes that refresh token again: two holders of one rotating refresh
// token would trip the IdP's reuse detection and end the token family, the running
// workflows' session included. Once the access token expires, log in again.
//
// The cache holds bearer credentials: nothing in this package prints, logs or returns a
// token in an error. It is not encrypted at rest; the file mode is the protection, as for
// other CLIs' credential files. It is not a keychain integration. Errors say what failed,
// not which command to run: the caller adds that.
package login
