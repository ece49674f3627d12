# The two commands a user needs: `make demo` (a whole replay through the pipeline, ending in a report)
# and `make test`. Both create or reuse .venv and install the project into it first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-deps lint install kinesis-mock clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/coattail demo

# System packages some tests need (Debian chromium for the HTML report), installed only when missing.
test-deps:
	bash scripts/ensure-chromium.sh

test: $(STAMP) test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Optional high-fidelity Kinesis (npm kinesis-local) in ./node_modules: `coattail up --kinesis kinesis-mock`.
kinesis-mock:
	bash scripts/install-kinesis-mock.sh

clean:
	rm -rf $(VENV) .coattail runs node_modules
