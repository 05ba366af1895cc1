package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Result is one benchmark run, as Run writes it (JSON) and Markdown renders it.
type Result struct {
	Date    time.Time `json:"date"`
	Machine Machine   `json:"machine"`
	Params  Params    `json:"params"`
	// Levels are the side-by-side measurements, one per number of runs in flight.
	Levels       []Level       `json:"levels"`
	History      *History      `json:"history,omitempty"`
	Verification *Verification `json:"verification,omitempty"`
	// LongRuns are the long-run rows, one per number of sessions.
	LongRuns []*LongRun `json:"long_runs,omitempty"`
	// Failed is the error that ended an incomplete run ("" for a complete one).
	Failed string `json:"failed,omitempty"`
}

// Machine is where it ran.
type Machine struct {
	CPUs     int     `json:"cpus"`
	CPUModel string  `json:"cpu_model"`
	OS       string  `json:"os"`
	Arch     string  `json:"arch"`
	Go       string  `json:"go"`
	Load1    float64 `json:"load1"` // the one-minute load average when the run began
}

// Params are the options the run used.
type Params struct {
	InFlight        []int  `json:"in_flight"`
	Runs            int    `json:"runs"`
	RunsAt1         int    `json:"runs_at_1"`
	Repeats         int    `json:"repeats"`
	Persona         string `json:"persona"`
	HistorySample   int    `json:"history_sample"`
	Sessions        []int  `json:"sessions"`
	SessionDuration string `json:"session_duration"`
	StepEvery       string `json:"step_every"`
	TokenTTL        string `json:"token_ttl"`
	LateAfter       string `json:"late_after"`
}

// Spread is the median of a few repeats and their range.
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func spreadOf(v []float64) Spread {
	if len(v) == 0 {
		return Spread{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Spread{Median: m, Min: s[0], Max: s[len(s)-1]}
}

// Level is the side-by-side measurement at one number of runs in flight. Rates are runs per
// second; latencies are start-to-complete milliseconds as the client saw them; ratios are
// oidcflow's over plain's, repeat by repeat.
type Level struct {
	InFlight    int      `json:"in_flight"`
	RunsPerSide int      `json:"runs_per_side"` // in each repeat
	Repeats     []Repeat `json:"repeats"`
	Failures    int      `json:"failures"`
	FirstError  string   `json:"first_error,omitempty"`

	PlainRate Spread `json:"plain_rate"`
	FlowRate  Spread `json:"oidcflow_rate"`
	RateRatio Spread `json:"rate_ratio"`
	PlainP50  Spread `json:"plain_p50_ms"`
	FlowP50   Spread `json:"oidcflow_p50_ms"`
	P50Ratio  Spread `json:"p50_ratio"`
	PlainP99  Spread `json:"plain_p99_ms"`
	FlowP99   Spread `json:"oidcflow_p99_ms"`
	P99Ratio  Spread `json:"p99_ratio"`

	PerRun PerRun `json:"per_run"`
}

// Repeat is one repeat of a Level.
type Repeat struct {
	PlainRate float64 `json:"plain_rate"`
	FlowRate  float64 `json:"oidcflow_rate"`
	PlainP50  float64 `json:"plain_p50_ms"`
	PlainP99  float64 `json:"plain_p99_ms"`
	FlowP50   float64 `json:"oidcflow_p50_ms"`
	FlowP99   float64 `json:"oidcflow_p99_ms"`
}

func (l *Level) summarize() {
	var pr, fr, rr, p50, f50, r50, p99, f99, r99 []float64
	for _, r := range l.Repeats {
		pr, fr, rr = append(pr, r.PlainRate), append(fr, r.FlowRate), append(rr, r.FlowRate/r.PlainRate)
		p50, f50, r50 = append(p50, r.PlainP50), append(f50, r.FlowP50), append(r50, r.FlowP50/r.PlainP50)
		p99, f99, r99 = append(p99, r.PlainP99), append(f99, r.FlowP99), append(r99, r.FlowP99/r.PlainP99)
	}
	l.PlainRate, l.FlowRate, l.RateRatio = spreadOf(pr), spreadOf(fr), spreadOf(rr)
	l.PlainP50, l.FlowP50, l.P50Ratio = spreadOf(p50), spreadOf(f50), spreadOf(r50)
	l.PlainP99, l.FlowP99, l.P99Ratio = spreadOf(p99), spreadOf(f99), spreadOf(r99)
}

// PerRun is what one oidcflow run cost at a Level, from the workers' own counts over all of
// the Level's repeats (divided by the runs each worker completed).
type PerRun struct {
	Runs  int                `json:"runs"`
	Vault map[string]float64 `json:"vault"` // VaultRead, ... per run
	IdP   map[string]float64 `json:"idp"`   // IdPToken, ... per run
	// EnvelopeOpens and Resumes are verifications per run: of the start's envelope and of the
	// session before each activity.
	EnvelopeOpens float64 `json:"envelope_opens"`
	Resumes       float64 `json:"session_resumes"`
	// OpenMs and ResumeMs are their mean durations (telemetry's verification histogram).
	OpenMs   float64 `json:"open_ms"`
	ResumeMs float64 `json:"resume_ms"`
	// Phases are the oidcflow worker's timed store calls (PhaseSpend, ...): calls per run and
	// their mean duration.
	Phases map[string]Phase `json:"phases"`
	// PlainCPUMs and FlowCPUMs are each worker process's CPU time per run.
	PlainCPUMs float64 `json:"plain_cpu_ms"`
	FlowCPUMs  float64 `json:"oidcflow_cpu_ms"`
}

// Phase is one timed step of an oidcflow run.
type Phase struct {
	PerRun float64 `json:"per_run"`
	MeanMs float64 `json:"mean_ms"`
}

// History compares the histories of a sample of completed runs (means per run).
type History struct {
	Sample            int     `json:"sample"`
	PlainEvents       float64 `json:"plain_events"`
	FlowEvents        float64 `json:"oidcflow_events"`
	PlainPayloadBytes float64 `json:"plain_payload_bytes"` // every Payload: inputs, results, headers
	FlowPayloadBytes  float64 `json:"oidcflow_payload_bytes"`
	PlainBytes        float64 `json:"plain_bytes"` // the whole history, encoded
	FlowBytes         float64 `json:"oidcflow_bytes"`
}

// Verification is the cost of verifying an ID token: a micro-benchmark on the stack's own
// token and keys, with and without the verified-token cache.
type Verification struct {
	Alg            string  `json:"alg"`
	UncachedMicros float64 `json:"uncached_us"`
	CachedMicros   float64 `json:"cached_us"`
}

// LongRun is the long-run row: Sessions independent logins on TokenTTL tokens, each running
// one identity-checked step every StepEvery for Duration on one oidcflow worker.
type LongRun struct {
	Sessions int    `json:"sessions"`
	Duration string `json:"duration"`
	Wall     string `json:"wall"` // from the first login to the last run's end

	StepsExpected int     `json:"steps_expected"`
	Steps         int     `json:"steps"`         // steps done with a valid token
	OnTime        int     `json:"steps_on_time"` // of those, not late
	Late          int     `json:"steps_late"`    // ran more than LateAfter after they were due
	Missed        int     `json:"steps_missed"`  // expected but not done, or done with an expired token
	FailedRuns    int     `json:"failed_runs"`   // runs that did not complete
	FirstError    string  `json:"first_error,omitempty"`
	LatenessP50   float64 `json:"lateness_p50_s"`
	LatenessP99   float64 `json:"lateness_p99_s"`
	LatenessMax   float64 `json:"lateness_max_s"`
	StartDelayP99 float64 `json:"start_delay_p99_s"` // start to first step

	Rotations         float64 `json:"rotations"`          // refreshes stored (oidcflow_refreshes_total)
	TokenRequests     float64 `json:"token_requests"`     // the worker's token endpoint requests
	IdPGrants         float64 `json:"idp_refresh_grants"` // refresh grants the IdP served the client (-1: no log)
	GrantsPerRotation float64 `json:"grants_per_rotation"`
	ReuseReports      float64 `json:"reuse_reports"` // Hydra's reuse detections in the window, any client (-1: no log)
	RefreshFailures   float64 `json:"refresh_failures"`

	VaultOpsPerMinute   float64 `json:"vault_ops_per_minute"`
	VaultOpsPerRotation float64 `json:"vault_ops_per_rotation"`
	WorkerCPUPercent    float64 `json:"worker_cpu_percent"` // of one core, mean over the run
	WorkerRSSMiB        float64 `json:"worker_rss_mib"`     // at the end
	WorkerPeakRSSMiB    float64 `json:"worker_peak_rss_mib"`
}

// ReadResult reads a Result that Run wrote.
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", path, err)
	}
	return &r, nil
}

// write saves r as <dir>/<date>.json and <dir>/latest.json.
func (r *Result) write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	b = append(b, '\n')
	name := r.Date.UTC().Format("20060102T150405Z")
	if r.Failed != "" {
		name += "-failed"
	}
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", err
	}
	if r.Failed != "" {
		return path, nil
	}
	return path, os.WriteFile(filepath.Join(dir, "latest.json"), b, 0o644)
}
