# Two entry points, both bootstrap everything on a fresh machine:
#   make run   - set up and start the running system (`remediate up`): a Prefect server with its
#                UI, the served deployments, the Alertmanager intake and a sandbox cluster with a
#                sample incident that an alert turns into a verified mitigation; Ctrl-C stops it
#   make test  - set up, run lint, type checks, layering contracts and the test suite
#   make demo  - the one-shot rehearsal: sandbox, incident, triage dry run then --apply
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Prefect keeps its local SQLite database and settings inside the project, not in ~/.prefect.
export PREFECT_HOME ?= $(CURDIR)/var/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export NO_PROXY := 127.0.0.1,localhost

.PHONY: setup system-deps monitoring-deps run demo test lint typecheck contracts unit bench clean

setup: $(STAMP)

# The sandbox is a distribution of its own (sandbox/pyproject.toml) that the `dev` extra requires:
# installing both in one command lets pip satisfy that requirement from ./sandbox, not an index.
$(STAMP): pyproject.toml sandbox/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./sandbox -e '.[dev]'
	@command -v kubectl >/dev/null || echo "note: kubectl is not on the PATH; the kubectl conformance tests need it"
	mkdir -p $(PREFECT_HOME)
	touch $(STAMP)

# `up` migrates the incident store (SQLite under var/ unless REMEDIATE_STORE__URL says otherwise)
# before it starts anything that writes it.
run: $(STAMP) monitoring-deps
	$(BIN)/remediate up

demo: $(STAMP)
	$(BIN)/remediate db upgrade
	$(BIN)/remediate demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy flows tasks store

contracts: $(STAMP)
	$(BIN)/lint-imports

# The monitoring loop's binaries (Debian's prometheus, with promtool, and
# prometheus-alertmanager): `run` starts them on the sandbox, the tests check the rules with
# promtool and close every scenario through them. Without root `run` goes on without the loop
# (and says so); the tests need them.
monitoring-deps:
	-@command -v promtool >/dev/null || { \
	  echo "installing prometheus with apt-get (needs root): promtool checks and unit-tests the rules"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; }
	-@command -v prometheus-alertmanager >/dev/null || { \
	  echo "installing prometheus-alertmanager with apt-get (needs root): the monitoring loop"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-alertmanager; }

# Scenario C's tests start real redis-server processes of their own (never a system service);
# the store's tests start a throwaway PostgreSQL server unless REMEDIATE_TEST_POSTGRES_URL names
# one (.ci/run does), so the server binaries must be there. The rule tests run the real promtool,
# the monitoring loop's tests the real Prometheus and Alertmanager (Debian's packages start
# nothing by themselves).
system-deps: monitoring-deps
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server with apt-get (needs root)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }
	@command -v chromium >/dev/null || { \
	  echo "installing chromium with apt-get (needs root): the browser test drives the Prefect UI"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
	  echo "installing postgresql with apt-get (needs root)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

# Two workers; the tests that share the session's `remediate up` stack run on one of them
# (xdist_group "stack"). A single test or module: `.venv/bin/pytest tests/...` as usual.
unit: $(STAMP) system-deps
	$(BIN)/pytest -n 2 --dist loadgroup

test: lint typecheck contracts unit

# alert_to_mitigation exits 1 when it misses issue 22's goal: `-` goes on to the other benches.
bench: $(STAMP)
	$(BIN)/python bench/sandbox_list.py
	$(BIN)/python bench/incident_store.py
	$(BIN)/python bench/sqlite_handoff.py
	-$(BIN)/python bench/alert_to_mitigation.py
	$(BIN)/python bench/intake_storm.py
	$(BIN)/python bench/incident_storm.py
	$(BIN)/python bench/health_sweep.py
	$(BIN)/python bench/gate_cost.py
	$(BIN)/python bench/time_to_recover.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
