package interceptors

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors/envelope"
)

// maxUnclaimedSenders bounds the senders kept per signal name that workflow code has not
// asked about; the oldest signal without a sender is dropped first.
const maxUnclaimedSenders = 256

// sentSignal is a delivered signal's verified sender (nil: none) and the digest of its
// arguments, which is how identity.SignalSender finds it.
type sentSignal struct {
	digest string
	sender *identity.Identity
}

type pendingSignal struct {
	ctx     workflow.Context
	in      *interceptor.HandleSignalInput
	digest  []byte
	sealed  []byte
	withSWS bool   // the envelope rode on a signal-with-start
	start   []byte // a signal-with-start's start envelope, which the server records with it
	ref     *reference
}

// SignalSender implements identity.SignalSender: it matches value to a delivered signal of
// that name by the digest of its arguments and answers once per signal.
func (r run) SignalSender(ctx workflow.Context, signalName string, value any) *identity.Identity {
	d, err := InputDigest(signalName, value)
	if err != nil {
		return nil
	}
	want := hex.EncodeToString(d)
	list := r.st.senders[signalName]
	for i, s := range list {
		if s.digest == want {
			r.st.senders[signalName] = append(list[:i:i], list[i+1:]...)
			return s.sender
		}
	}
	return nil
}

// HandleSignal queues a signal that carries an identity; deliverSignals verifies and
// delivers queued signals in arrival order. HandleSignal itself may not block.
func (w *workflowInbound) HandleSignal(ctx workflow.Context, in *interceptor.HandleSignalInput) error {
	header := interceptor.WorkflowHeader(ctx)
	p := pendingSignal{ctx: ctx, in: in}
	p.digest = w.root.signalDigest(ctx, in.SignalName, in.Arg.GetPayloads())
	key := EnvelopeHeader
	if header[SignalEnvelopeHeader] != nil { // a signal-with-start: the other one is the start's
		key, p.withSWS = SignalEnvelopeHeader, true
	}
	hasEnvelope, err := getHeader(header, key, &p.sealed)
	if err != nil {
		hasEnvelope, p.sealed = false, nil // delivered without a sender
	}
	if p.withSWS {
		if ok, err := getHeader(header, EnvelopeHeader, &p.start); !ok || err != nil {
			p.start = nil
		}
	}
	var ref reference
	if ok, err := getHeader(header, SessionHeader, &ref); ok && err == nil {
		p.ref = &ref
	}
	if !hasEnvelope && p.start == nil && p.ref == nil && len(w.state.pending) == 0 {
		w.state.remember(in.SignalName, p.digest, nil)
		return w.Next.HandleSignal(ctx, in)
	}
	w.state.pending = append(w.state.pending, p)
	return nil
}

// signalDigest is the digest of a delivered signal's arguments, decoded first with the
// worker's PayloadCodec (when it has one) so that it matches the digest the sender's
// envelope holds (InputDigest over the values). Arguments that cannot be decoded or
// digested give a digest that matches no envelope. A decode may call Vault (a data key not
// yet cached), so it runs with the workflow's deadlock detection paused, as the SDK runs a
// data converter wrapped in workflow.DataConverterWithoutDeadlockDetection; ctx may be nil
// outside workflow code.
func (w *workerInterceptor) signalDigest(ctx workflow.Context, name string, args []*commonpb.Payload) []byte {
	if c := w.opts.PayloadCodec; c != nil {
		var dc converter.DataConverter = workflow.DataConverterWithoutDeadlockDetection(codecDecoder{c})
		if ctx != nil {
			dc = dc.(workflow.ContextAware).WithWorkflowContext(ctx)
		}
		var decoded []*commonpb.Payload
		if err := dc.FromPayloads(&commonpb.Payloads{Payloads: args}, &decoded); err == nil {
			args = decoded
		}
	}
	d, _ := payloadDigest(name, args)
	return d
}

// codecDecoder is a data converter that only decodes payloads with a codec, so that
// workflow.DataConverterWithoutDeadlockDetection can run the codec: FromPayloads stores the
// decoded payloads in its one *[]*commonpb.Payload argument. Nothing else is supported.
type codecDecoder struct{ codec converter.PayloadCodec }

var errDecoderOnly = errors.New("interceptors: codecDecoder only decodes payloads")

func (d codecDecoder) FromPayloads(ps *commonpb.Payloads, ptrs ...any) error {
	out, ok := ptrs[0].(*[]*commonpb.Payload)
	if len(ptrs) != 1 || !ok {
		return errDecoderOnly
	}
	decoded, err := d.codec.Decode(ps.GetPayloads())
	if err != nil {
		return err
	}
	*out = decoded
	return nil
}

func (codecDecoder) ToPayload(any) (*commonpb.Payload, error)      { return nil, errDecoderOnly }
func (codecDecoder) FromPayload(*commonpb.Payload, any) error      { return errDecoderOnly }
func (codecDecoder) ToPayloads(...any) (*commonpb.Payloads, error) { return nil, errDecoderOnly }
func (codecDecoder) ToString(*commonpb.Payload) string             { return "" }
func (codecDecoder) ToStrings(*commonpb.Payloads) []string         { return nil }

func (st *runState) remember(name string, digest []byte, sender *identity.Identity) {
	list := append(st.senders[name], sentSignal{digest: hex.EncodeToString(digest), sender: sender})
	if len(list) > maxUnclaimedSenders {
		// Drop the oldest signal that named nobody, so a flood of unsigned signals cannot
		// push a verified sender out; else the oldest.
		drop := slices.IndexFunc(list, func(s sentSignal) bool { return s.sender == nil })
		list = slices.Delete(list, max(drop, 0), max(drop, 0)+1)
	}
	st.senders[name] = list
}

func (w *workflowInbound) deliverSignals(ctx workflow.Context) {
	for {
		if err := workflow.Await(ctx, func() bool { return len(w.state.pending) > 0 }); err != nil {
			return
		}
		p := w.state.pending[0]
		w.state.pending = w.state.pending[1:]
		w.spendStart(ctx, p)
		w.state.remember(p.in.SignalName, p.digest, w.signalSender(ctx, p))
		if err := w.Next.HandleSignal(p.ctx, p.in); err != nil {
			workflow.GetLogger(ctx).Error("signal not delivered", "signal", p.in.SignalName, "error", err.Error())
		}
	}
}

// swsStartChange marks, in history, the runs that spend the start envelope a
// signal-with-start carries; runs recorded before the change replay without it.
const swsStartChange = "oidcflow.sws-start-spent"

// spendStart spends the start envelope that rode on a signal-with-start, for this run's start:
// when the signal-with-start started this run, the start spent it already (the same owner, so
// nothing changes); when the run was already running, the server recorded the start envelope
// with the signal, unopened, and a copy must not start another run.
func (w *workflowInbound) spendStart(ctx workflow.Context, p pendingSignal) {
	if p.start == nil || workflow.GetVersion(ctx, swsStartChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	info := workflow.GetInfo(ctx)
	op := Operation{
		Binding: envelope.Binding{Namespace: info.Namespace, WorkflowID: info.WorkflowExecution.ID, Operation: envelope.OpStart},
		RunID:   info.WorkflowExecution.RunID,
	}
	if err := w.root.la.spendEnvelope(ctx, op, p.start); err != nil {
		workflow.GetLogger(ctx).Warn("a signal-with-start's start envelope was not spent", "error", err.Error())
	}
}

// signalSender verifies a queued signal's identity; a signal that fails verification is
// still delivered (Temporal cannot refuse a signal) but with no sender, and logged.
func (w *workflowInbound) signalSender(ctx workflow.Context, p pendingSignal) *identity.Identity {
	info := workflow.GetInfo(ctx)
	var id *identity.Identity
	var err error
	switch {
	case p.digest == nil:
		err = fmt.Errorf("interceptors: the signal's arguments are not readable: %w", errMalformedHeader)
	case p.sealed != nil:
		seen := envelopeKey(p.sealed)
		if w.state.seen[seen] {
			err = ErrReplayedEnvelope
			break
		}
		op := Operation{
			Binding:  envelope.Binding{Namespace: info.Namespace, WorkflowID: info.WorkflowExecution.ID, Operation: envelope.SignalOp(p.in.SignalName)},
			RunID:    info.WorkflowExecution.RunID,
			RunStart: info.WorkflowStartTime,
			At:       workflow.Now(ctx),
			Digest:   p.digest,
		}
		if p.withSWS { // recorded by the server together with the start
			op.At = info.WorkflowStartTime
		}
		if id, err = w.root.la.open(ctx, op, p.sealed); err == nil {
			w.state.seen[seen] = true
		}
	case p.ref != nil:
		// A reference is honoured once per run and once in the pool; only a verified one
		// spends its id, so a forged copy cannot spend the id of a signal still to come.
		if w.state.seen[p.ref.From] {
			err = ErrBadReference
			break
		}
		id, err = w.root.la.resume(ctx, resumeInput{
			Ref: *p.ref, Op: opSignal + p.in.SignalName, From: p.ref.From, Digest: hex.EncodeToString(p.digest),
			Target: info.Namespace + "/" + info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID,
			Now: workflow.Now(ctx),
		})
		if err == nil {
			w.state.seen[p.ref.From] = true
		}
	}
	if err != nil {
		workflow.GetLogger(ctx).Warn("signal identity refused; delivered without a sender",
			"signal", p.in.SignalName, "error", err.Error())
		return nil
	}
	return id
}
