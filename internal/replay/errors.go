package replay

import (
	"errors"
	"fmt"
	"strings"
)

// Errors a Failure wraps.
var (
	// ErrNondeterminism: the code issued other commands than the history recorded (the
	// SDK's TMPRL1100). Deploying it fails every such open run's next workflow task.
	ErrNondeterminism = errors.New("replay: non-deterministic")
	// ErrUnknownType: no workflow of the history's type is registered, so a worker of this
	// code cannot run it at all (a type renamed or dropped while runs are open).
	ErrUnknownType = errors.New("replay: workflow type not registered")
	// ErrReachedOut: the replay called the authenticator (Vault, the IdP). A replay must
	// find every identity recorded in history; a new worker would verify again instead.
	ErrReachedOut = errors.New("replay: replay tried to reach Vault or the IdP")
)

// Failure is a run the current code does not replay as it ran.
type Failure struct {
	// Source says where the history came from: a saved file, or "namespace <name>".
	Source       string
	WorkflowType string
	WorkflowID   string
	RunID        string
	// EventID is the history event where the SDK found the replay departing from the
	// history: the event of a command the code no longer issues there (or issues
	// differently). When the SDK names no event (the code issues a command the history
	// lacks, or the task failed for another reason), it is TaskEventID. 0 when it could not
	// be told (the type is unknown, or no task completed before the failure).
	EventID int64
	// EventType is the type of event EventID ("ActivityTaskScheduled", ...).
	EventType string
	// TaskEventID is the WorkflowTaskCompleted event of the first workflow task that does
	// not replay; the code departs from the history among the commands of that task (which
	// follow it), at EventID or before.
	TaskEventID int64
	// Err is the SDK's error (its message names the mismatching event and command).
	Err error
}

// maxDetail bounds how much of the SDK's message Error repeats: the message prints whole
// events, payloads included.
const maxDetail = 600

func (f *Failure) Error() string {
	what := "does not replay"
	if f.Nondeterministic() {
		what = "is not deterministic"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "replay: %s workflow %s (run %s, %s) %s", f.WorkflowType, f.WorkflowID, f.RunID, f.Source, what)
	if f.EventID > 0 {
		fmt.Fprintf(&b, " at event %d (%s", f.EventID, f.EventType)
		if f.TaskEventID != f.EventID {
			fmt.Fprintf(&b, ", in the workflow task completed at event %d", f.TaskEventID)
		}
		b.WriteString(")")
	}
	detail := f.Err.Error()
	if len(detail) > maxDetail {
		detail = detail[:maxDetail] + "..."
	}
	b.WriteString(": " + detail)
	return b.String()
}

// Nondeterministic reports whether the replay failed on the SDK's non-determinism check.
func (f *Failure) Nondeterministic() bool {
	return errors.Is(f.Err, ErrNondeterminism) || strings.Contains(f.Err.Error(), "TMPRL1100")
}

// Unwrap returns the SDK's error, and ErrNondeterminism when it is one.
func (f *Failure) Unwrap() []error {
	if f.Nondeterministic() && !errors.Is(f.Err, ErrNondeterminism) {
		return []error{ErrNondeterminism, f.Err}
	}
	return []error{f.Err}
}
