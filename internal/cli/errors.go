package cli

import (
	"context"
	"errors"
	"strings"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/login"
)

// classify maps an error to its --json code, the message people read, and the exit code.
// Each message says what to do next.
func (r *runner) classify(err error) (code, msg string, exit int) {
	var (
		usage    *usageError
		idp      *idpError
		tmp      *temporalError
		nf       *notFoundError
		changed  *changedError
		expired  *login.SessionExpiredError
		format   *login.CacheFormatError
		app      *temporal.ApplicationError
		tokenExp *identity.TokenExpiredError
	)
	switch {
	case errors.As(err, &usage):
		return CodeUsage, usage.msg + " (see `starter help`)", ExitUsage
	case errors.Is(err, login.ErrNotLoggedIn):
		return CodeNotLoggedIn, "not logged in; run `starter login`", ExitError
	case errors.As(err, &format):
		return CodeNewerSessionFile, "the session file " + format.Path + " was written by a newer starter; upgrade it or log in " +
			"again (`starter login` replaces the file)", ExitError
	case errors.As(err, &expired):
		return CodeSessionExpired, "your session expired (" + expired.Reason + "); run `starter login`", ExitError
	case errors.Is(err, login.ErrIdPUnreachable), errors.Is(err, identity.ErrProviderUnavailable):
		if errors.As(err, &idp) {
			return CodeIdPUnreachable, idp.Error(), ExitError
		}
		return CodeIdPUnreachable, (&idpError{r.issuer(), err}).Error(), ExitError
	case errors.As(err, &idp):
		return CodeIdPUnreachable, idp.Error(), ExitError
	}
	if m, ok := isForbidden(err); ok {
		return CodeForbidden, "refused by policy: " + m, ExitError
	}
	var denied *serviceerror.PermissionDenied
	if errors.As(err, &denied) {
		return CodeForbidden, "refused by Temporal (" + denied.Message + "): your token lacks the permission for this call in namespace " +
			r.namespace() + "; ask for " + r.namespace() + ":write (starting and approving) or :read (status), then run `starter login` again", ExitError
	}
	var notReady *serviceerror.WorkflowNotReady
	if errors.As(err, &notReady) {
		return CodeError, "the run takes no update now: its workflow task is failing or being retried (a worker " +
			"stopped in the middle of it, or the workers cannot keep up); nothing was decided. Try again in a " +
			"moment; if it persists, look at the workers' logs", ExitError
	}
	if errors.As(err, &app) {
		switch app.Type() {
		case identity.TypeTokenExpired, identity.TypeReauthRequired:
			return CodeSessionExpired, "your session expired (" + bare(app.Message()) + "); run `starter login`", ExitError
		case identity.TypeUnauthenticated, identity.TypeInvalidToken:
			return CodeSessionExpired, "the worker did not accept your identity (" + bare(app.Message()) + "); run `starter login`", ExitError
		}
	}
	switch {
	case errors.As(err, &tokenExp):
		return CodeSessionExpired, "your session expired (" + bare(tokenExp.Error()) + "); run `starter login`", ExitError
	case errors.As(err, &tmp):
		return CodeTemporal, tmp.Error(), ExitError
	case errors.As(err, &nf):
		return CodeNotFound, nf.msg, ExitError
	case errors.As(err, &changed):
		return CodeRequestChanged, changed.msg, ExitError
	case errors.Is(err, context.DeadlineExceeded):
		return CodeError, err.Error(), ExitError
	}
	return CodeError, err.Error(), ExitError
}

func (r *runner) namespace() string {
	if r.env == nil {
		return "TEMPORAL_NAMESPACE"
	}
	return r.env.String("TEMPORAL_NAMESPACE")
}

func (r *runner) issuer() string {
	if r.env == nil {
		return "OIDCFLOW_ISSUER"
	}
	return r.env.String("OIDCFLOW_ISSUER")
}

// bare strips the package prefix from an identity message; the starter adds its own advice.
func bare(msg string) string {
	return strings.TrimPrefix(msg, "identity: ")
}
