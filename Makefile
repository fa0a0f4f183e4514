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
$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing Python dependencies into $(VENV) ..."
	@$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt 2> >(grep -v "^WARNING: Location" >&2)
	@touch $@

$(TOOLS_VENV)/.installed: requirements-tools.txt constraints-tools.txt
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	@echo "installing checkov, check-jsonschema and zizmor into $(TOOLS_VENV) ..."
	@$(TOOLS_VENV)/bin/python -m pip install --quiet -r requirements-tools.txt -c constraints-tools.txt 2> >(grep -v "^WARNING: Location" >&2)
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

# --- daily commands: plan, diff, deploy, destroy (scripts/plan.py, scripts/deploy.py) ----------
AUTO_APPROVE ?=
FORCE_PRD ?=
MIGRATE_STATE ?=
RECONFIGURE ?=
LOCK_TIMEOUT ?= 0s
stack-arg = $(if $(STACK),--stack $(STACK))
# Checked when the Makefile is read, so a forgotten ENV= fails before any set-up work.
ifneq ($(filter plan diff deploy destroy,$(MAKECMDGOALS)),)
ifeq ($(strip $(ENV)),)
$(error usage: make $(firstword $(filter plan diff deploy destroy,$(MAKECMDGOALS))) ENV=<env> [STACK=<kind>])
endif
endif

.PHONY: plan
plan: setup ## Synth ENV, then terraform init + plan per stack (STACK= narrows); one summary line each
	$(PY) scripts/plan.py --env $(ENV) $(stack-arg) --lock-timeout $(LOCK_TIMEOUT) $(if $(filter 1,$(RECONFIGURE)),--reconfigure)

.PHONY: diff
diff: setup ## `cdktf diff` of ENV's stacks, one at a time (STACK= narrows)
	$(PY) scripts/deploy.py diff --env $(ENV) $(stack-arg) $(if $(filter 1,$(MIGRATE_STATE)),--migrate-state)

.PHONY: deploy
deploy: setup ## `cdktf deploy` of ENV's stacks in dependency order; asks first unless AUTO_APPROVE=1
	$(PY) scripts/deploy.py deploy --env $(ENV) $(stack-arg) $(if $(filter 1,$(AUTO_APPROVE)),--auto-approve) $(if $(filter 1,$(MIGRATE_STATE)),--migrate-state)

.PHONY: destroy
destroy: setup ## `cdktf destroy` in reverse order (bootstrap only if STACK=bootstrap); prd needs FORCE_PRD=1
	$(PY) scripts/deploy.py destroy --env $(ENV) $(stack-arg) $(if $(filter 1,$(AUTO_APPROVE)),--auto-approve) $(if $(filter 1,$(FORCE_PRD)),--force-production)

# --- formatting, linting, pictures, benchmarks -----------------------------------------------
.PHONY: fmt
fmt: setup ## Format Python (ruff) and the environment files (terraform fmt)
	$(PY) scripts/fmt.py

.PHONY: lint
lint: setup $(TOOLS_VENV)/.installed ## ruff, terraform fmt -check, and the GitHub workflow linters
	$(PY) -m ruff check .
	$(PY) scripts/fmt.py --check
	$(PY) scripts/lint_workflows.py

.PHONY: diagram
diagram: setup ## Architecture diagrams from the synthesized JSON: docs/architecture.md (+ SVG with Graphviz)
	$(PY) scripts/diagram.py

.PHONY: bench-selection
bench-selection: setup ## Synthesis time and peak memory per stack kind alone against all kinds
	$(PY) scripts/bench_selection.py

# --- state --------------------------------------------------------------------------------
.PHONY: migrate-bootstrap
migrate-bootstrap: setup ## Move bootstrap-ENV's local state into its own S3 bucket, lineage checked
	@test -n "$(ENV)" || { echo "usage: make migrate-bootstrap ENV=<env>"; exit 2; }
	$(PY) scripts/migrate_bootstrap.py $(ENV)

.PHONY: force-unlock
force-unlock: setup ## Show (or, with LOCK_ID=, release) the state lock of STACK in ENV; state checked after
	@test -n "$(ENV)" -a -n "$(STACK)" || { echo "usage: make force-unlock ENV=<env> STACK=<kind> [LOCK_ID=<id>]"; exit 2; }
	$(PY) scripts/force_unlock.py $(ENV) $(STACK) $(LOCK_ID)

.PHONY: clean
clean: ## Remove cdktf.out and plans/ (never local_state/)
	rm -rf cdktf.out .cdktf.out.new-* .cdktf.out.old-* plans
