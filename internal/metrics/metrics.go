// Package metrics is a small Prometheus text-format registry that is also a Temporal SDK
// metrics.Handler, so the SDK's worker metrics and oidcflow's own counters come out of one
// /metrics endpoint without another dependency.
//
// Counters and gauges are exported as such; timers as a count and a sum of seconds
// (`_seconds_count`, `_seconds_sum`), not as histograms.
package metrics

import (
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
)

// Registry holds every series. The zero value is not usable; use New.
type Registry struct {
	mu     sync.Mutex
	series map[string]*series // by name + labels
}

type kind int

const (
	counter kind = iota
	gauge
	timer
)

type series struct {
	name   string
	labels string // rendered {k="v",...}
	kind   kind
	value  atomic.Uint64 // counter: count; gauge: float64 bits; timer: count
	sum    atomic.Uint64 // timer: nanoseconds
}

// New returns an empty registry.
func New() *Registry { return &Registry{series: map[string]*series{}} }

// Handler returns the registry as a Temporal SDK metrics handler (client.Options.MetricsHandler).
func (r *Registry) Handler() client.MetricsHandler { return handler{r: r} }

// Counter returns the counter name{labels}, creating it at zero.
func (r *Registry) Counter(name string, labels map[string]string) *Counter {
	return &Counter{r.get(name, labels, counter)}
}

// Counter is a monotonically increasing count.
type Counter struct{ s *series }

// Inc adds one.
func (c *Counter) Inc() { c.s.value.Add(1) }

// Value returns the count.
func (c *Counter) Value() uint64 { return c.s.value.Load() }

func (r *Registry) get(name string, labels map[string]string, k kind) *series {
	name = sanitize(name)
	l := render(labels)
	r.mu.Lock()
	defer r.mu.Unlock()
	key := name + l
	s, ok := r.series[key]
	if !ok {
		s = &series{name: name, labels: l, kind: k}
		r.series[key] = s
	}
	return s
}

func sanitize(name string) string {
	return strings.Map(func(c rune) rune {
		if c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			return c
		}
		return '_'
	}, name)
}

func render(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(labels)) {
		if i > 0 {
			b.WriteByte(',')
		}
		v := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(labels[k])
		fmt.Fprintf(&b, "%s=\"%s\"", sanitize(k), v)
	}
	b.WriteByte('}')
	return b.String()
}

// WriteTo writes every series in the Prometheus text exposition format (version 0.0.4).
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	all := slices.SortedFunc(maps.Values(r.series), func(a, b *series) int {
		return strings.Compare(a.name+a.labels, b.name+b.labels)
	})
	r.mu.Unlock()
	var b strings.Builder
	typed := map[string]bool{}
	for _, s := range all {
		switch s.kind {
		case counter:
			if !typed[s.name] {
				fmt.Fprintf(&b, "# TYPE %s counter\n", s.name)
				typed[s.name] = true
			}
			fmt.Fprintf(&b, "%s%s %d\n", s.name, s.labels, s.value.Load())
		case gauge:
			if !typed[s.name] {
				fmt.Fprintf(&b, "# TYPE %s gauge\n", s.name)
				typed[s.name] = true
			}
			fmt.Fprintf(&b, "%s%s %g\n", s.name, s.labels, math.Float64frombits(s.value.Load()))
		case timer:
			n := s.name + "_seconds"
			if !typed[n] {
				fmt.Fprintf(&b, "# TYPE %s summary\n", n)
				typed[n] = true
			}
			fmt.Fprintf(&b, "%s_count%s %d\n", n, s.labels, s.value.Load())
			fmt.Fprintf(&b, "%s_sum%s %g\n", n, s.labels, time.Duration(s.sum.Load()).Seconds())
		}
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// ServeHTTP serves the registry at /metrics.
func (r *Registry) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	r.WriteTo(w)
}

// handler adapts the registry to the SDK's metrics.Handler.
type handler struct {
	r    *Registry
	tags map[string]string
}

func (h handler) WithTags(tags map[string]string) client.MetricsHandler {
	m := maps.Clone(h.tags)
	if m == nil {
		m = map[string]string{}
	}
	maps.Copy(m, tags)
	return handler{r: h.r, tags: m}
}

func (h handler) Counter(name string) client.MetricsCounter {
	s := h.r.get(name, h.tags, counter)
	return counterFunc(func(d int64) {
		if d > 0 {
			s.value.Add(uint64(d))
		}
	})
}

func (h handler) Gauge(name string) client.MetricsGauge {
	s := h.r.get(name, h.tags, gauge)
	return gaugeFunc(func(v float64) { s.value.Store(math.Float64bits(v)) })
}

func (h handler) Timer(name string) client.MetricsTimer {
	s := h.r.get(name, h.tags, timer)
	return timerFunc(func(d time.Duration) {
		s.value.Add(1)
		s.sum.Add(uint64(max(d, 0)))
	})
}

type counterFunc func(int64)

func (f counterFunc) Inc(d int64) { f(d) }

type gaugeFunc func(float64)

func (f gaugeFunc) Update(v float64) { f(v) }

type timerFunc func(time.Duration)

func (f timerFunc) Record(d time.Duration) { f(d) }
