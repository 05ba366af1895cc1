# oidcflow: the two commands are `make demo` (run the demo on the dev stack) and
# `make test` (all unit and integration tests against the dev stack).
GO           ?= go
DEVSTACK     := bin/devstack
TEST_TIMEOUT ?= 45m
TEST_FLAGS   ?=
TEST_PKGS    ?= ./...
DEMO         ?= ./internal/demo
DEMO_FLAGS   ?= -duration=30s

.PHONY: tools postgres browser devstack up down status test demo

# tools builds the pinned dev servers once per machine (cache folder) and links bin/.
tools:
	@tools/build.sh

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

# test brings the stack up, runs every test with the stack required, and takes the stack
# down again if it was not up before; its exit code is the tests'.
test: tools postgres browser devstack
	@was_up=; $(DEVSTACK) status >/dev/null 2>&1 && was_up=1; \
	$(DEVSTACK) up || { [ -n "$$was_up" ] || $(DEVSTACK) down; exit 1; }; \
	status=0; \
	echo "test: OIDCFLOW_REQUIRE_STACK=1 $(GO) test -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) $(TEST_PKGS)"; \
	OIDCFLOW_REQUIRE_STACK=1 $(GO) test -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) $(TEST_PKGS) || status=$$?; \
	echo "test: fault tests (they pause and restart Vault and Hydra, so they run alone)"; \
	OIDCFLOW_REQUIRE_STACK=1 OIDCFLOW_FAULTS=1 $(GO) test -timeout 15m -count=1 -run Fault ./internal/lifetimes || status=$$?; \
	[ -n "$$was_up" ] || $(DEVSTACK) down; \
	exit $$status

# demo brings the stack up (it stays up; `make down` stops it) and runs the demo.
demo: up
	@$(GO) run $(DEMO) $(DEMO_FLAGS)
