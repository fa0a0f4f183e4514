# mlops-infra: every command a user or CI runs. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
TOOLS_VENV := .venv-tools
PY := $(VENV)/bin/python
ENV ?=
STACK ?=

# Quiet, reproducible runs of jsii (Node 20 is end-of-life for it) and Terraform.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CHECKPOINT_DISABLE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

# --- set-up -------------------------------------------------------------------------------
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing Python dependencies into $(VENV) ..."
	@$(PY) -m pip install --quiet -r requirements-dev.txt 2> >(grep -v "^WARNING: Location" >&2)
	@touch $@

$(TOOLS_VENV)/.installed: requirements-tools.txt
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	@echo "installing checkov and actionlint into $(TOOLS_VENV) ..."
	@$(TOOLS_VENV)/bin/python -m pip install --quiet -r requirements-tools.txt 2> >(grep -v "^WARNING: Location" >&2)
	@touch $@

node_modules/.installed: package.json package-lock.json
	@command -v node >/dev/null || { echo "Node.js 20+ is required (22+ recommended)"; exit 1; }
	@echo "installing cdktf-cli into node_modules ..."
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: setup
setup: $(VENV)/.installed node_modules/.installed ## Create .venv and node_modules (done by synth/test when missing)

# --- synthesis ----------------------------------------------------------------------------
.PHONY: synth
synth: setup ## Synthesize every stack of every environment to cdktf.out/ (ENV=, STACK= narrow it)
	@MLOPS_ENVS="$(ENV)" MLOPS_STACKS="$(STACK)" $(PY) main.py

# --- checks -------------------------------------------------------------------------------
.PHONY: test
test: setup $(TOOLS_VENV)/.installed ## The full check: ruff, mypy, pytest (CI runs exactly this)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest

.PHONY: bench
bench: setup ## Wall time and peak memory of synthesis against a bare provider-import baseline
	$(PY) scripts/bench.py

# --- state --------------------------------------------------------------------------------
.PHONY: migrate-bootstrap
migrate-bootstrap: setup ## Move bootstrap-ENV's local state into its own S3 bucket, lineage checked
	@test -n "$(ENV)" || { echo "usage: make migrate-bootstrap ENV=<env>"; exit 2; }
	$(PY) scripts/migrate_bootstrap.py $(ENV)

.PHONY: clean
clean: ## Remove cdktf.out (never local_state/)
	rm -rf cdktf.out .cdktf.out.new-* .cdktf.out.old-*
