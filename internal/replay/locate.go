package replay

import (
	"regexp"
	"strconv"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
)

// The SDK names the event where a replay departs from the history in one of two ways:
// sdkEvent by its type and contents ("history event is ActivityTaskScheduled: (...)",
// "missing replay command for TimerStarted: (...)"), sdkCommand by the id of the command
// behind it ("a matching Timer command was expected in history event position 9").
var (
	sdkEvent   = regexp.MustCompile(`(?:history event is|missing replay command for) ([A-Za-z]+): `)
	sdkCommand = regexp.MustCompile(`a matching (\w+) command was expected in history event position ([^\s]+?)\.? `)
)

// locate finds the events where a replay of h that failed with err departed from the
// history: the event the SDK's message names, and the WorkflowTaskCompleted event of the
// workflow task it belongs to. The SDK replays a history as one task and names the event by
// its contents or its command's id, so locate first finds the workflow task: it replays
// prefixes that end where a workflow task is scheduled (a prefix checks every task
// completed in it) and bisects for the first one that fails. Within that task's events it
// picks the one the message names; when none is named, the event is the task's
// WorkflowTaskCompleted.
func (g *Gate) locate(h History, err error) (event, task *historypb.HistoryEvent) {
	events := h.Events.GetEvents()
	var cuts []int // prefix ends: indexes of WorkflowTaskScheduled events with a task before
	for i, e := range events {
		if i >= 3 && e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED {
			cuts = append(cuts, i)
		}
	}
	// The first failing prefix; len(cuts) stands for the whole history, which failed.
	lo, hi := 0, len(cuts)
	for lo < hi {
		mid := (lo + hi) / 2
		if g.replay(h, events[:cuts[mid]]) != nil {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	end := len(events)
	if lo < len(cuts) {
		end = cuts[lo]
	}
	start := -1 // the failing task's WorkflowTaskCompleted
	for i := end - 1; i >= 0; i-- {
		if events[i].GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			start = i
			break
		}
	}
	if start < 0 {
		return nil, nil
	}
	task = events[start]
	if event = named(events[start+1:end], err.Error()); event == nil {
		event = task
	}
	return event, task
}

// named returns the event of span that msg (the SDK's message) names, or nil.
func named(span []*historypb.HistoryEvent, msg string) *historypb.HistoryEvent {
	if m := sdkCommand.FindStringSubmatch(msg); m != nil {
		for _, e := range span {
			if id, ok := commandID(e); (ok && id == m[2]) || (!ok && strconv.FormatInt(e.GetEventId(), 10) == m[2]) {
				return e
			}
		}
		return nil
	}
	loc := sdkEvent.FindStringSubmatchIndex(msg)
	if loc == nil {
		return nil
	}
	typ := msg[loc[2]:loc[3]]
	// Only the event's part of the message: the command's part may print another id.
	msg = msg[loc[1]:]
	if i := strings.Index(msg, "replay command is"); i >= 0 {
		msg = msg[:i]
	}
	var first *historypb.HistoryEvent
	for _, e := range span {
		if e.GetEventType().String() != typ {
			continue
		}
		if first == nil {
			first = e
		}
		if id, ok := commandID(e); ok && (strings.Contains(msg, "("+commandField(e)+id+",") || strings.Contains(msg, ", "+commandField(e)+id+",")) {
			return e
		}
	}
	return first
}

// commandID returns the id of the command behind e, for the kinds of commands that have one.
func commandID(e *historypb.HistoryEvent) (string, bool) {
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		return e.GetActivityTaskScheduledEventAttributes().GetActivityId(), true
	case enumspb.EVENT_TYPE_TIMER_STARTED:
		return e.GetTimerStartedEventAttributes().GetTimerId(), true
	case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
		return e.GetStartChildWorkflowExecutionInitiatedEventAttributes().GetWorkflowId(), true
	}
	return "", false
}

// commandField is the name under which the SDK's message prints commandID(e).
func commandField(e *historypb.HistoryEvent) string {
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		return "ActivityId:"
	case enumspb.EVENT_TYPE_TIMER_STARTED:
		return "TimerId:"
	}
	return "WorkflowId:"
}
