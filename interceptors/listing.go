package interceptors

import (
	"slices"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// listingChange marks, in history, the runs whose client-set listing the worker clears.
// Runs recorded before the change replay without it.
const listingChange = "oidcflow.trusted-listing"

// clearListing removes the listing search attributes and memo keys a client set at start
// (WorkerOptions.ListingSearchAttributes, ListingMemo, "oidcflow." memo keys). It adds no
// command when there is nothing to clear.
func (w *workerInterceptor) clearListing(ctx workflow.Context) error {
	present := workflow.GetTypedSearchAttributes(ctx)
	var unset []temporal.SearchAttributeUpdate
	for _, k := range w.opts.ListingSearchAttributes {
		if present.ContainsKey(k) {
			unset = append(unset, k.ValueUnset())
		}
	}
	memo := map[string]any{}
	//workflowcheck:ignore the loop fills a set, so the order does not matter
	for key := range workflow.GetInfo(ctx).Memo.GetFields() {
		if strings.HasPrefix(key, "oidcflow.") || slices.Contains(w.opts.ListingMemo, key) {
			memo[key] = nil // nil removes the key
		}
	}
	if len(unset) == 0 && len(memo) == 0 {
		return nil
	}
	if workflow.GetVersion(ctx, listingChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	if len(unset) > 0 {
		if err := workflow.UpsertTypedSearchAttributes(ctx, unset...); err != nil {
			return err
		}
	}
	if len(memo) > 0 {
		return workflow.UpsertMemo(ctx, memo)
	}
	return nil
}
