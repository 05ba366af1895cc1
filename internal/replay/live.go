package replay

import (
	"context"
	"fmt"
	"iter"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// RunningQuery is the visibility query of OpenRuns: the runs a new worker would take over.
const RunningQuery = `ExecutionStatus="Running"`

// OpenRuns lists the running runs of c's namespace that match filter (a visibility query
// ANDed with RunningQuery; "" for all of them) and yields each one's history, fetched when
// it is reached, with Source "namespace <namespace>". It stops at the first error, which it
// yields. A run that closes meanwhile is yielded with the history it has then; it replays
// all the same.
func OpenRuns(ctx context.Context, c client.Client, namespace, filter string) iter.Seq2[History, error] {
	query := RunningQuery
	if filter != "" {
		query += " AND (" + filter + ")"
	}
	return func(yield func(History, error) bool) {
		var token []byte
		for {
			resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Namespace: namespace, Query: query, NextPageToken: token,
			})
			if err != nil {
				yield(History{}, fmt.Errorf("replay: list %s in namespace %s: %w", query, namespace, err))
				return
			}
			for _, ex := range resp.GetExecutions() {
				id, runID := ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId()
				events, err := fetch(ctx, c, id, runID)
				if err != nil {
					yield(History{}, fmt.Errorf("replay: history of %s (run %s): %w", id, runID, err))
					return
				}
				h := History{Source: "namespace " + namespace, WorkflowID: id, RunID: runID, State: "running", Events: events}
				if !yield(h, nil) {
					return
				}
			}
			if token = resp.GetNextPageToken(); len(token) == 0 {
				return
			}
		}
	}
}

// fetch reads a run's whole history.
func fetch(ctx context.Context, c client.Client, id, runID string) (*historypb.History, error) {
	h := &historypb.History{}
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, err
		}
		h.Events = append(h.Events, e)
	}
	return h, nil
}
