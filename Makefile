# The two commands a user needs: `make demo` (a whole replay through the pipeline, ending in a report)
# and `make test`. Both create or reuse .venv and install the project into it first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# Spark's jars (pipeline/spark-jars.json) live in the checkout's cache, shared by every venv of it.
JARS_DIR := .cache/jars
JARS_STAMP := $(JARS_DIR)/.verified
PYTEST_ARGS ?=
# The dashboard's build (scripts/build-dashboard.sh), redone when its sources or lock file change.
DASHBOARD_STAMP := dashboard/dist/.built
DASHBOARD_SOURCES := $(shell find dashboard/src dashboard/index.html dashboard/package-lock.json dashboard/*.ts \
	dashboard/*.json -type f 2>/dev/null)

.PHONY: demo test test-deps lint audit faults install jars lock kinesis-mock clean dashboard bench-micro

# Every dependency installs at the version the lock file names (`make lock` refreshes it).
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

# Spark's jars: Maven fetches the ones missing from $(JARS_DIR) (pipeline.jars.DEFAULT_JARS_DIR) and each
# is checked against its SHA-256; the stamp is written only when all are there, so a second install
# downloads nothing. Without Maven or Maven Central it prints what is missing and the install goes on:
# only Spark's Iceberg/Delta writers need them. `make jars` checks again (and fetches what is missing).
$(JARS_STAMP): pipeline/spark-jars.json | $(STAMP)
	$(BIN)/python -m infra.jars

jars: $(STAMP)
	$(BIN)/python -m infra.jars

# The local driver JVM's class archive (pipeline.jvm_archive): made once per Java and jars, which halves
# a session's class loading; a no-op when it is there, and sessions start without it when it is not.
install: $(STAMP) $(JARS_STAMP) $(DASHBOARD_STAMP)
	$(BIN)/python -m pipeline.jvm_archive

# Without Node/npm the script says so and the stamp is not written: the next install tries again.
$(DASHBOARD_STAMP): $(DASHBOARD_SOURCES)
	bash scripts/build-dashboard.sh
	if [ -f dashboard/dist/index.html ]; then touch $(DASHBOARD_STAMP); fi

dashboard:
	bash scripts/build-dashboard.sh

# Re-resolve requirements.lock from pyproject.toml (add PIP_COMPILE_ARGS=--upgrade to move every pin).
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(LOCK) pip-tools
	$(BIN)/pip-compile --quiet --extra dev --strip-extras --no-emit-find-links \
		--output-file $(LOCK) $(PIP_COMPILE_ARGS) pyproject.toml

demo: install
	$(BIN)/coattail demo

# System packages some tests need (Debian chromium for the HTML report), installed only when missing.
test-deps:
	bash scripts/ensure-chromium.sh

test: install test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# Known vulnerabilities in requirements.lock (pip-audit; allow-list in .ci/audit-allowlist.txt). Says
# "NOT DONE", without failing, when no vulnerability service answers from this machine.
audit: install
	$(BIN)/python scripts/audit_deps.py

# Micro benchmarks of the hot paths (benchmarks/micro; `make test` only runs them once, untimed). Each run
# is saved under .benchmarks/; BENCH_ARGS=--benchmark-compare compares with the last saved one.
BENCH_ARGS ?=
bench-micro: install
	$(BIN)/python -m pytest benchmarks/micro --benchmark-only --benchmark-autosave $(BENCH_ARGS)

# The full emulator-fault suite (docs/RELIABILITY.md); `make test` runs a bounded one.
faults: install
	$(BIN)/coattail faults --suite full

# Optional high-fidelity Kinesis (npm kinesis-local) in ./node_modules: `coattail up --kinesis kinesis-mock`.
kinesis-mock:
	bash scripts/install-kinesis-mock.sh

clean:
	rm -rf $(VENV) .coattail runs node_modules dashboard/node_modules dashboard/dist
