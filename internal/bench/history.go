package bench

import (
	"context"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// historySize is what one run's history holds.
type historySize struct {
	events       int
	payloadBytes int // every Payload in it (inputs, results, headers, memo)
	bytes        int // the events, encoded
}

// measureHistory reads a completed run's history.
func measureHistory(ctx context.Context, c client.Client, workflowID string) (historySize, error) {
	var s historySize
	it := c.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return s, err
		}
		s.events++
		s.bytes += proto.Size(e)
		s.payloadBytes += payloadBytes(e.ProtoReflect())
	}
	return s, nil
}

var payloadName = (&commonpb.Payload{}).ProtoReflect().Descriptor().FullName()

// payloadBytes sums the encoded size of every Payload message inside m.
func payloadBytes(m protoreflect.Message) int {
	if m.Descriptor().FullName() == payloadName {
		return proto.Size(m.Interface())
	}
	n := 0
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					n += payloadBytes(mv.Message())
					return true
				})
			}
		case fd.IsList():
			if fd.Kind() == protoreflect.MessageKind {
				l := v.List()
				for i := range l.Len() {
					n += payloadBytes(l.Get(i).Message())
				}
			}
		case fd.Kind() == protoreflect.MessageKind:
			n += payloadBytes(v.Message())
		}
		return true
	})
	return n
}

// compareHistories measures the histories of the sampled runs of each side.
func compareHistories(ctx context.Context, c client.Client, plainIDs, flowIDs []string) (*History, error) {
	h := &History{Sample: min(len(plainIDs), len(flowIDs))}
	if h.Sample == 0 {
		return nil, nil
	}
	for i := range h.Sample {
		p, err := measureHistory(ctx, c, plainIDs[i])
		if err != nil {
			return nil, err
		}
		f, err := measureHistory(ctx, c, flowIDs[i])
		if err != nil {
			return nil, err
		}
		h.PlainEvents += float64(p.events)
		h.FlowEvents += float64(f.events)
		h.PlainPayloadBytes += float64(p.payloadBytes)
		h.FlowPayloadBytes += float64(f.payloadBytes)
		h.PlainBytes += float64(p.bytes)
		h.FlowBytes += float64(f.bytes)
	}
	n := float64(h.Sample)
	h.PlainEvents /= n
	h.FlowEvents /= n
	h.PlainPayloadBytes /= n
	h.FlowPayloadBytes /= n
	h.PlainBytes /= n
	h.FlowBytes /= n
	return h, nil
}
