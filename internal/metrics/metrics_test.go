package metrics

import (
	"strings"
	"testing"
	"time"
)

func TestExposition(t *testing.T) {
	r := New()
	r.Counter("oidcflow_refreshes_total", nil).Inc()
	h := r.Handler().WithTags(map[string]string{"task_queue": `q"1`})
	h.Counter("temporal_request").Inc(2)
	h.Gauge("temporal.worker.slots").Update(3.5)
	h.Timer("temporal_latency").Record(1500 * time.Millisecond)
	var b strings.Builder
	r.WriteTo(&b)
	for _, want := range []string{
		"# TYPE oidcflow_refreshes_total counter\noidcflow_refreshes_total 1\n",
		`temporal_request{task_queue="q\"1"} 2`,
		`temporal_worker_slots{task_queue="q\"1"} 3.5`,
		`temporal_latency_seconds_count{task_queue="q\"1"} 1`,
		`temporal_latency_seconds_sum{task_queue="q\"1"} 1.5`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
}
