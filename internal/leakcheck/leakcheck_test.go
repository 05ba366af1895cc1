package leakcheck

import (
	"encoding/base64"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
)

const token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbi0xMjM0NTY3ODkw"

func TestScan(t *testing.T) {
	refresh := "ory_rt_" + strings.Repeat("x7Q", 20)
	for name, tc := range map[string]struct {
		text string
		want int
	}{
		"clean":                 {"nothing to see: sub=bob", 0},
		"whole JWT":             {"header " + token, 2}, // as a JWT and as a fragment
		"signature fragment":    {"...iLW9mLXRoZS10b2tlbi0xMjM0...", 1},
		"refresh fragment":      {"rt=" + refresh[5:30], 1},
		"base64 JSON, no JWT":   {base64.StdEncoding.EncodeToString([]byte(`{"sub":"bob"}`)), 0},
		"short common fragment": {"eyJzdWIiOiJib2I", 0},
	} {
		got := Scan([]string{token, refresh}, map[string]string{name: tc.text})
		if len(got) != tc.want {
			t.Errorf("%s: %v, want %d findings", name, got, tc.want)
		}
		for _, f := range got {
			if strings.Contains(f.String(), token[:Window]) || strings.Contains(f.String(), refresh[:Window]) {
				t.Errorf("%s: the finding repeats the token", name)
			}
		}
	}
}

func TestHistoryTextsDecodePayloads(t *testing.T) {
	h := &historypb.History{Events: []*historypb.HistoryEvent{{
		Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{
			WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{
				Input: &commonpb.Payloads{Payloads: []*commonpb.Payload{{Data: []byte(`"` + token + `"`)}}},
			},
		},
	}}}
	texts, err := HistoryTexts("w", h)
	if err != nil {
		t.Fatal(err)
	}
	if got := Scan([]string{token}, texts); len(got) != 4 { // JWT and fragment, in each
		t.Fatalf("a token in a payload must show in both renderings as JWT and fragment, got %v", got)
	}
}
