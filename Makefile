# oidcflow: the two commands are `make demo` (run the demo on the dev stack) and
# `make test` (the checks, then all unit and integration tests against the dev stack).
GO           ?= go
DEVSTACK     := bin/devstack
TEST_TIMEOUT ?= 45m
TEST_FLAGS   ?=
TEST_PKGS    ?= ./...
DEMO         ?= ./internal/demo
DEMO_FLAGS   ?= -duration=30s
RACE_TIMEOUT ?= 15m
# NO_STACK is an env file that does not exist: it makes the integration tests skip in the
# race run even when a stack is up.
NO_STACK     := $(CURDIR)/.stack/none-for-unit-tests

# The replay gate's live namespace: REPLAY_ADDRESS empty replays the saved histories only.
REPLAY_ADDRESS   ?= $(TEMPORAL_ADDRESS)
REPLAY_NAMESPACE ?= $(or $(TEMPORAL_NAMESPACE),default)
REPLAY_FLAGS     ?=
# RECORD_ESCALATION=1 makes record-histories record the escalated AccessRequest too (an hour).
RECORD_ESCALATION ?=
# BENCH_FLAGS go to the benchmark (`go run ./internal/bench/cmd/bench -h`): for a quick look
# BENCH_FLAGS='-runs 30 -runs-1 20 -sessions 5 -session-duration 1m'; the defaults measure
# 300 runs per side and repeat at 10 and 50 in flight, 100 at 1, and long runs of 100, 300
# and 1000 sessions for 5 minutes each (about 50 minutes on 2 cores).
BENCH_FLAGS ?=

.PHONY: tools checkers postgres browser devstack up down status checks replay-check record-histories test demo bench bench-readme

# tools builds the pinned dev servers and checkers once per machine (cache folder) and links bin/.
tools:
	@tools/build.sh

# checkers builds only the pinned staticcheck and workflowcheck.
checkers:
	@tools/build.sh staticcheck workflowcheck

# postgres installs PostgreSQL from the Debian packages when its binaries are missing.
postgres:
	@if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null 2>&1; then \
	  :; \
	else \
	  echo "postgres: installing the Debian package postgresql"; \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql || \
	  { $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; }; \
	fi

# browser installs Chromium from the Debian packages when it is missing (the Web UI test in
# internal/e2e drives it headless).
browser:
	@if [ -x /usr/bin/chromium ]; then \
	  :; \
	else \
	  echo "browser: installing the Debian package chromium"; \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium || \
	  { $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }; \
	fi

# devstack builds the launcher (also the login/consent app, `devstack serve-idp`).
devstack:
	@echo "devstack: building the launcher"
	@$(GO) build -o $(DEVSTACK) ./internal/devstack/cmd/devstack

up: tools postgres devstack
	@$(DEVSTACK) up

down: devstack
	@$(DEVSTACK) down

status: devstack
	@$(DEVSTACK) status

# checks runs go vet, staticcheck, workflowcheck (every package: it reports only code that
# workflows reach) and the unit tests under the race detector, without a stack (integration
# tests skip). A failing check does not stop the others; the exit code says whether any failed.
checks: checkers
	@status=0; \
	echo "checks: $(GO) vet ./..."; \
	$(GO) vet ./... || status=1; \
	echo "checks: $(GO) vet ./... in examples (a module of its own)"; \
	(cd examples && $(GO) vet ./...) || status=1; \
	echo "checks: bin/staticcheck ./..."; \
	bin/staticcheck ./... || status=1; \
	echo "checks: bin/workflowcheck -config tools/workflowcheck/config.yaml ./..."; \
	bin/workflowcheck -config tools/workflowcheck/config.yaml ./... || status=1; \
	echo "checks: $(GO) test -race ./... (unit tests; no stack, so integration tests skip)"; \
	env -u OIDCFLOW_REQUIRE_STACK OIDCFLOW_ENV_FILE=$(NO_STACK) $(GO) test -race -timeout $(RACE_TIMEOUT) ./... || status=1; \
	exit $$status

# replay-check is the replay gate: it replays every saved history (testdata folders with an
# index) against the current workflow code with the real worker interceptors, and, with
# REPLAY_ADDRESS (default: TEMPORAL_ADDRESS), every running run of the pool's task queue in
# REPLAY_NAMESPACE there: run it before deploying a worker. It fails when a run does not replay.
replay-check:
	@$(GO) run ./internal/replay/cmd/replay-check -address="$(REPLAY_ADDRESS)" -namespace="$(REPLAY_NAMESPACE)" $(REPLAY_FLAGS)

# record-histories records the replay gate's saved histories (internal/replay/testdata) from
# the running stack (`make up`): every shipped workflow type in every state it can be left in.
record-histories:
	@OIDCFLOW_UPDATE_TESTDATA=1 OIDCFLOW_RECORD_ESCALATION=$(RECORD_ESCALATION) OIDCFLOW_REQUIRE_STACK=1 \
	  $(GO) test -count=1 -timeout 90m -run TestStackRecordHistories -v ./internal/replay

# test runs the checks, brings the stack up, runs every test with the stack required, and
# takes the stack down again if it was not up before; it fails when a check or a test fails.
test: tools postgres browser devstack
	@status=0; \
	$(MAKE) --no-print-directory checks || status=$$?; \
	echo "test: replay-check (the saved histories)"; \
	$(MAKE) --no-print-directory replay-check REPLAY_ADDRESS= || status=$$?; \
	was_up=; $(DEVSTACK) status >/dev/null 2>&1 && was_up=1; \
	$(DEVSTACK) up || { [ -n "$$was_up" ] || $(DEVSTACK) down; exit 1; }; \
	echo "test: OIDCFLOW_REQUIRE_STACK=1 $(GO) test -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) $(TEST_PKGS)"; \
	OIDCFLOW_REQUIRE_STACK=1 $(GO) test -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) $(TEST_PKGS) || status=$$?; \
	echo "test: the examples module (a module of its own, so ./... above does not reach it)"; \
	(cd examples && OIDCFLOW_REQUIRE_STACK=1 $(GO) test -timeout 10m $(TEST_FLAGS) ./...) || status=$$?; \
	echo "test: the Temporal server's authorizer and the server itself (tools/temporal, a module of its own)"; \
	(cd tools/temporal && OIDCFLOW_TEMPORAL_SERVER_BIN=$(CURDIR)/bin/temporal-server $(GO) test -trimpath -timeout 10m $(TEST_FLAGS) ./...) || status=$$?; \
	echo "test: fault tests (they pause and restart Vault and Hydra, and rotate its signing key, so they run alone)"; \
	OIDCFLOW_REQUIRE_STACK=1 OIDCFLOW_FAULTS=1 $(GO) test -timeout 15m -count=1 -p 1 -run Fault ./internal/lifetimes ./identity || status=$$?; \
	[ -n "$$was_up" ] || $(DEVSTACK) down; \
	exit $$status

# bench brings the stack up if it is not, runs the benchmark (internal/bench: oidcflow side by
# side with plain Temporal on the same server, and a long run of refreshing sessions), prints
# its table and writes artifacts/bench/latest.json; then it takes the stack down again if it
# was not up before.
bench: tools postgres devstack
	@was_up=; $(DEVSTACK) status >/dev/null 2>&1 && was_up=1; \
	$(DEVSTACK) up || { [ -n "$$was_up" ] || $(DEVSTACK) down; exit 1; }; \
	status=0; \
	$(GO) run ./internal/bench/cmd/bench $(BENCH_FLAGS) || status=$$?; \
	[ -n "$$was_up" ] || $(DEVSTACK) down; \
	exit $$status

# bench-readme renders the README's performance section from artifacts/bench/latest.json.
bench-readme:
	@$(GO) run ./internal/bench/cmd/bench readme -in artifacts/bench/latest.json -readme README.md

# demo brings the stack up (it stays up; `make down` stops it) and runs the demo.
demo: up
	@$(GO) run $(DEMO) $(DEMO_FLAGS)
