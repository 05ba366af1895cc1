package replay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
)

// History is one run's history and where it came from.
type History struct {
	// Source says where it came from: a saved file's path, or "namespace <name>".
	Source string
	// WorkflowID and RunID are the run's (child workflow ids and request ids derive from the
	// workflow id, so a replay needs the original one).
	WorkflowID string
	RunID      string
	// State is what the run was doing when it was saved ("pending", "parked", ...), if known.
	State  string
	Events *historypb.History
}

// WorkflowType returns the history's workflow type name (from its first event).
func (h History) WorkflowType() string {
	ev := h.Events.GetEvents()
	if len(ev) == 0 {
		return ""
	}
	return ev[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()
}

// check rejects what is not a workflow history.
func (h History) check() error {
	ev := h.Events.GetEvents()
	if len(ev) == 0 || ev[0].GetEventType() != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED {
		return fmt.Errorf("replay: %s: workflow %s: not a workflow history (%d events; it must start with WorkflowExecutionStarted)",
			h.Source, h.WorkflowID, len(ev))
	}
	return nil
}

// ran reports whether a workflow task of h completed: else no code has run it yet, and
// there is nothing to replay (any code takes it from the start).
func (h History) ran() bool {
	return slices.ContainsFunc(h.Events.GetEvents(), func(e *historypb.HistoryEvent) bool {
		return e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
	})
}

func (h History) failure(err error, event, task *historypb.HistoryEvent) *Failure {
	f := &Failure{Source: h.Source, WorkflowType: h.WorkflowType(), WorkflowID: h.WorkflowID, RunID: h.RunID, Err: err}
	if event != nil {
		f.EventID, f.EventType = event.GetEventId(), event.GetEventType().String()
	}
	f.TaskEventID = task.GetEventId()
	return f
}

// Index files. A folder of saved histories has one of them; LoadDir reads the first present.
const (
	// IndexFile is a list of IndexEntry (written by this package's recorder,
	// TestStackRecordHistories).
	IndexFile = "histories.json"
	// decisionsIndex is a list of IndexEntry with file, workflow_id and run_id (workflows'
	// TestStackSaveDecisionHistory).
	decisionsIndex = "decisions.json"
	// idsIndex maps each history-*.json file to its workflow id (the conformance test's).
	idsIndex = "workflow-ids.json"
)

var indexFiles = []string{IndexFile, decisionsIndex, idsIndex}

// IndexEntry names one saved history of a folder.
type IndexEntry struct {
	// File is the history's path relative to the folder (protojson of a history.v1.History).
	File string `json:"file"`
	// WorkflowType is the history's type; LoadDir checks it against the history.
	WorkflowType string `json:"workflow_type,omitempty"`
	// State is what the run was doing when it was saved.
	State      string `json:"state,omitempty"`
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id,omitempty"`
	// Note says how the run got there (who did what), for a reader of the folder.
	Note string `json:"note,omitempty"`
}

// ErrNoIndex: a folder given to LoadDir has none of the index files.
var ErrNoIndex = errors.New("replay: no index of saved histories (histories.json, decisions.json or workflow-ids.json)")

// LoadDir reads the saved histories of dir, named by its index file. With histories.json,
// every other .json file under dir must be in the index (or in a folder with an index of its
// own, as histories kept from an earlier release are), so that no saved history is left out
// of the gate unnoticed.
func LoadDir(dir string) ([]History, error) {
	entries, index, err := readIndex(dir)
	if err != nil {
		return nil, err
	}
	if index == IndexFile {
		if err := checkListed(dir, entries); err != nil {
			return nil, err
		}
	}
	out := make([]History, 0, len(entries))
	for _, e := range entries {
		path := filepath.Join(dir, filepath.FromSlash(e.File))
		hist, err := ReadHistory(path)
		if err != nil {
			return nil, err
		}
		h := History{Source: path, WorkflowID: e.WorkflowID, RunID: e.RunID, State: e.State, Events: hist}
		if err := h.check(); err != nil {
			return nil, err
		}
		if e.WorkflowType != "" && e.WorkflowType != h.WorkflowType() {
			return nil, fmt.Errorf("replay: %s: the index says workflow type %s, the history %s", path, e.WorkflowType, h.WorkflowType())
		}
		out = append(out, h)
	}
	return out, nil
}

// ReadHistory reads a history saved as JSON (protojson, or the Temporal CLI's and UI's
// export).
func ReadHistory(path string) (*historypb.History, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	if err != nil {
		return nil, fmt.Errorf("replay: %s: %w", path, err)
	}
	return h, nil
}

// readIndex reads dir's index file, whichever format it has.
func readIndex(dir string) ([]IndexEntry, string, error) {
	for _, name := range indexFiles {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("replay: %w", err)
		}
		var entries []IndexEntry
		if name == idsIndex {
			var ids map[string]string
			if err := json.Unmarshal(raw, &ids); err != nil {
				return nil, "", fmt.Errorf("replay: %s: %w", filepath.Join(dir, name), err)
			}
			// Every history-*.json file, with its id when the map has one.
			files, _ := filepath.Glob(filepath.Join(dir, "history-*.json"))
			for _, f := range files {
				entries = append(entries, IndexEntry{File: filepath.Base(f), WorkflowID: ids[filepath.Base(f)]})
			}
		} else if err := json.Unmarshal(raw, &entries); err != nil {
			return nil, "", fmt.Errorf("replay: %s: %w", filepath.Join(dir, name), err)
		}
		if len(entries) == 0 {
			return nil, "", fmt.Errorf("replay: %s names no history", filepath.Join(dir, name))
		}
		return entries, name, nil
	}
	return nil, "", fmt.Errorf("%w in %s", ErrNoIndex, dir)
}

// checkListed fails for a .json file under dir that the index does not name; folders
// under dir with an index of their own are theirs.
func checkListed(dir string, entries []IndexEntry) error {
	listed := map[string]bool{}
	for _, e := range entries {
		listed[filepath.ToSlash(filepath.Clean(e.File))] = true
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && hasIndex(path) {
				return filepath.SkipDir // a folder of its own (FindDirs finds it)
			}
			return nil
		}
		if !strings.HasSuffix(path, ".json") {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if rel = filepath.ToSlash(rel); rel != IndexFile && !listed[rel] {
			return fmt.Errorf("replay: %s is not in %s; add it or remove it", path, filepath.Join(dir, IndexFile))
		}
		return nil
	})
}

// skipDirs are folders FindDirs never enters: version control, the dev stack's state,
// built binaries, and the tools' own modules.
var skipDirs = []string{".git", ".stack", "bin", "tools", "node_modules"}

// FindDirs returns the folders under root that hold saved histories: folders inside a
// testdata folder (or testdata folders) with an index file, sorted. Other modules under root
// (a folder with its own go.mod) are not entered.
func FindDirs(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if path != root {
			if slices.Contains(skipDirs, d.Name()) {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
		}
		rel, _ := filepath.Rel(root, path)
		if !slices.Contains(strings.Split(filepath.ToSlash(rel), "/"), "testdata") {
			return nil
		}
		if hasIndex(path) {
			dirs = append(dirs, path)
		}
		return nil
	})
	return dirs, err
}

// hasIndex reports whether dir has an index file.
func hasIndex(dir string) bool {
	for _, name := range indexFiles {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}
