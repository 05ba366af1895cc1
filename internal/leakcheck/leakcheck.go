// Package leakcheck looks for credentials where none may be: Temporal histories, logs and
// error messages. It finds compact JWTs, and any 20-character window of the tokens it is
// given (so a truncated, re-encoded-free or embedded copy is found too).
package leakcheck

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"strconv"
	"sync"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Window is the length of the token fragments looked for.
const Window = 20

// jwt matches a compact JWS: base64url JSON header and payload, dot separated. (Base64 of
// ordinary JSON payloads also starts with eyJ, but has no dots.)
var jwt = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.`)

// Finding is one place where a credential shows.
type Finding struct {
	Where  string // the text's name, e.g. "history <id> (proto)"
	Offset int    // byte offset of the fragment, -1 for a JWT match
}

func (f Finding) String() string {
	if f.Offset < 0 {
		return f.Where + " holds a JWT"
	}
	return fmt.Sprintf("%s holds part of a token at byte %d", f.Where, f.Offset)
}

// Scan reports the texts (name → text) that hold a JWT or a fragment of any of tokens.
// Tokens shorter than Window are ignored. It never returns a token's characters.
func Scan(tokens []string, texts map[string]string) []Finding {
	windows := map[string]bool{}
	for _, s := range tokens {
		for i := 0; i+Window <= len(s); i++ {
			windows[s[i:i+Window]] = true
		}
	}
	var out []Finding
	for where, text := range texts {
		if jwt.MatchString(text) {
			out = append(out, Finding{where, -1})
		}
		for i := 0; i+Window <= len(text); i++ {
			if windows[text[i:i+Window]] {
				out = append(out, Finding{where, i})
				break
			}
		}
	}
	return out
}

// HistoryTexts renders a history two ways for Scan: as raw protobuf, and as JSON with every
// payload's data decoded (as the Web UI shows it; a token inside appears verbatim). Left
// base64-encoded, public claims such as the issuer URL could line up with a token's payload
// segment by chance.
func HistoryTexts(name string, h *historypb.History) (map[string]string, error) {
	j, err := protojson.Marshal(h)
	if err != nil {
		return nil, err
	}
	raw, err := proto.Marshal(h)
	if err != nil {
		return nil, err
	}
	return map[string]string{
		"history " + name + " (json, payloads decoded)": decodePayloads(string(j)),
		"history " + name + " (proto)":                  string(raw),
	}, nil
}

// History fetches every event of one run (the latest when runID is empty).
func History(ctx context.Context, c client.Client, workflowID, runID string) (*historypb.History, error) {
	h := &historypb.History{}
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("leakcheck: history of %s: %w", workflowID, err)
		}
		h.Events = append(h.Events, e)
	}
	return h, nil
}

var dataField = regexp.MustCompile(`"data":\s*"([A-Za-z0-9+/=]*)"`)

// decodePayloads replaces each base64 "data" field of a protojson history with its bytes.
func decodePayloads(j string) string {
	return dataField.ReplaceAllStringFunc(j, func(m string) string {
		b, err := base64.StdEncoding.DecodeString(dataField.FindStringSubmatch(m)[1])
		if err != nil {
			return m
		}
		return `"data": ` + strconv.Quote(string(b))
	})
}

// Buffer collects output written from several goroutines (a worker's logs, a process's
// stderr) for Scan. The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
