// Package bench measures what oidcflow adds to plain Temporal, side by side on one server in
// one run (`make bench`): a three-activity workflow through a plain worker (no interceptors)
// and through oidcflow's worker (internal/app), each in a process of its own, started by the
// same driver and interleaved batch by batch so that the machine's noise falls on both.
//
// It reports, for 1, 10 and 50 runs in flight, the throughput ratio and the start-to-complete
// latency (p50, p99) of both, each the median of several repeats with their spread; what
// each oidcflow run costs in Vault requests, identity provider requests, envelope opens,
// history events and payload bytes; the verification time per activity, cached and
// uncached; and a long-run row: concurrent sessions on short-lived tokens refreshing for
// minutes, with the refreshes' timeliness, the identity provider grants per rotation, the
// Vault load and the worker's CPU and memory. Run writes the result as JSON; Markdown
// renders the README's performance section from it.
//
// Workers count their own requests: a counting http.RoundTripper in place of
// http.DefaultTransport (the verifier's and refresher's identity provider requests) and a
// counting retry check on the pool's Vault client (one call per Vault request). Nothing of
// this is in the product: the counting lives in the benchmark's worker process.
//
// Not done: the benchmark asserts nothing about its numbers (no timed assertions anywhere);
// it does not start or stop the dev stack (the Makefile does); it profiles only when asked
// (Options.ProfileDir).
package bench
