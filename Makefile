# mlops-infra: every command a user or CI runs. `make help` lists them and their variables.
# Each daily target is a thin alias of `python -m ops <command>` (see `python -m ops --help`).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
TOOLS_VENV := .venv-tools
PY := $(VENV)/bin/python
OPS := $(PY) -m ops

# Variables (`make help` prints these lines):
ENV ?=## environment(s), e.g. dev; one per env_specific_vars/<env>.tfvars (synth: default all)
STACK ?=## stack kind(s): bootstrap, mlflow, databricks, comma-separated (default: all)
LOCK_TIMEOUT ?= 0s## how long to wait for a state lock another run holds, e.g. 10m
AUTO_APPROVE ?=## 1: no confirmation prompt (CI)
DIRECT ?=## 1: deploy through cdktf deploy (plans and applies at once) instead of the saved plans
FORCE_PRD ?=## 1: allow destroying, upgrading (MLflow, the database engine) or rolling back an environment with is_production = true
MIGRATE_STATE ?=## 1: approve a backend change (cdktf --migrate-state)
RECONFIGURE ?=## 1: terraform init -reconfigure (lock settings changed)
LOCK_ID ?=## the lock to release, exactly as state-unlock showed it
CHECK ?=## 1: change nothing, exit 1 if the files are stale
SELECTION ?=## 1: bench also each other stack kind alone
SUITE ?=## 1: bench also times `make check` (make test without its set-up) once, against one synth
THROUGHPUT ?=## 1: bench also measures what MLflow sign-in costs (the rehearsal's throughput step, ~4 min)
RUNS ?= 3## bench: runs per case
TEST_WORKERS ?= auto## test: pytest-xdist workers (auto: one per core, plus one for the time the state tests wait on Terraform)
TO ?=## state-migrate: "local" moves the state back out of the bucket (tearing an environment down); db-upgrade: the MySQL version, e.g. 8.4
FROM ?=## state-adopt: the old state file; env-add: the environment to copy
BUNDLE_STATE ?=## adopt: the bundle's current state file (after unbind), instead of asking the databricks CLI
BUNDLE_DIR ?=## adopt: the bundle's git checkout (the directory of its databricks.yml)
BRANCHES ?=## adopt: the bundle's deploying branches, comma-separated (e.g. origin/main,origin/release)
UNBIND ?=## adopt: 1: run the unbind commands once every other check passed
NAME ?=## env-add: the new environment's name
ARGS ?=## rehearse: extra arguments, e.g. --skip-install --keep DIR
WARNINGS ?=## 1: synth names every placeholder (default: one line per file)

# Quiet, reproducible runs of jsii (Node 20 is end-of-life for it) and Terraform.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CHECKPOINT_DISABLE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

comma := ,
env-args = $(if $(strip $(ENV)),--env $(subst $(comma), ,$(strip $(ENV))))
stack-args = $(if $(strip $(STACK)),--stack $(subst $(comma), ,$(strip $(STACK))))
flag = $(if $(filter 1,$(strip $($(1)))),$(2))

.PHONY: help
help: ## [] List the targets, their variables, and what the variables mean (fits 100 columns)
	@echo "usage: make <target> [VARIABLE=value ...]"
	@echo
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## \[([^]]*)\] (.*)$$/\1|\2|\3/' \
		| awk -F'|' -v width=100 -v indent=6 "$$WRAP"'{ head = sprintf("  %-14s %s", $$1, $$2); sub(/ +$$/, "", head); print head; wrap($$3) }'
	@echo
	@echo "variables:"
	@grep -hE '^[A-Z_]+ \?=.*## ' $(MAKEFILE_LIST) | sed -E 's/^([A-Z_]+) \?= ?([^#]*)## (.*)$$/\1|\2|\3/' \
		| awk -F'|' -v width=100 -v indent=17 "$$WRAP"'{ d = ($$2 == "") ? "" : " (default " $$2 ")"; printf "  %-14s ", $$1; wrap($$3 d, 1) }'

# awk: print text word by word within `width` columns, each line indented by `indent` spaces
# (the first line not indented when `inline`, as it follows a label).
export WRAP := function wrap(text, inline,   n, words, i, line, pad) { \
	pad = sprintf("%*s", indent, ""); n = split(text, words, " "); line = inline ? "" : pad; \
	for (i = 1; i <= n; i++) { \
		if (length(line) + length(words[i]) + 1 > width - (inline ? indent : 0) && line != "" && line != pad) { \
			print line; line = pad; inline = 0 } \
		line = (line == "" || line == pad) ? line words[i] : line " " words[i] } \
	print line }

# --- set-up -------------------------------------------------------------------------------
$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing Python dependencies into $(VENV) ..."
	@$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt 2> >(grep -v "^WARNING: Location" >&2)
	@touch $@

$(TOOLS_VENV)/.installed: requirements-tools.txt constraints-tools.txt
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	@echo "installing checkov, check-jsonschema, zizmor and actionlint into $(TOOLS_VENV) ..."
	@$(TOOLS_VENV)/bin/python -m pip install --quiet -r requirements-tools.txt -c constraints-tools.txt 2> >(grep -v "^WARNING: Location" >&2)
	@touch $@

# Test-only IAM policy simulator (tests/stacks/test_ci_trust.py): its own package.json, never the app's.
IAM_SIMULATE := tools/iam-simulate/node_modules/.installed
$(IAM_SIMULATE): tools/iam-simulate/package.json tools/iam-simulate/package-lock.json
	@command -v node >/dev/null || { echo "Node.js 20+ is required (22+ recommended)"; exit 1; }
	@echo "installing the IAM policy simulator into tools/iam-simulate ..."
	@npm ci --prefix tools/iam-simulate --no-audit --no-fund --loglevel=error
	@touch $@

node_modules/.installed: package.json package-lock.json
	@command -v node >/dev/null || { echo "Node.js 20+ is required (22+ recommended)"; exit 1; }
	@echo "installing cdktf-cli into node_modules ..."
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: setup
setup: $(VENV)/.installed node_modules/.installed ## [] Create .venv and node_modules (done by the other targets when missing)

# --- targets that need an environment: checked when the Makefile is read, before any set-up --
NEEDS_ENV := plan diff deploy destroy state-migrate state-unlock state-adopt adopt
ifneq ($(filter $(NEEDS_ENV),$(MAKECMDGOALS)),)
ifeq ($(strip $(ENV)),)
$(error usage: make $(firstword $(filter $(NEEDS_ENV),$(MAKECMDGOALS))) ENV=<env> (see `make help`))
endif
endif
ifneq ($(filter state-unlock,$(MAKECMDGOALS)),)
ifeq ($(strip $(STACK)),)
$(error usage: make state-unlock ENV=<env> STACK=<kind> [LOCK_ID=<id>])
endif
endif

# --- synthesis and checks -----------------------------------------------------------------
.PHONY: synth
synth: setup ## [ENV= STACK=] Synthesize the stacks to cdktf.out/ (default: every kind of every environment)
	@$(OPS) synth $(env-args) $(stack-args) $(call flag,WARNINGS,--warnings)

.PHONY: test
test: setup $(TOOLS_VENV)/.installed $(IAM_SIMULATE) ## [TEST_WORKERS=] The full check (CI runs exactly this): the set-up, then `make check`
	@$(MAKE) --no-print-directory check

# pytest on TEST_WORKERS workers, the `state` tests (real Terraform against moto) among the rest.
# They share the machine safely because tests/state/moto_serve.py writes each answer in one piece:
# with werkzeug's separate header and body writes, a Terraform process short of CPU at times closed
# its connection in between, the AWS SDK resent the DynamoDB write, and a resent lock write met
# the lock the first one took (tests/state/test_lost_lock_answer.py, docs/runbooks/stuck-lock.md).
# The soak tests stay out, as pyproject's addopts says. auto is one worker more than the cores:
# the state tests spend part of their time waiting (Terraform's retry back-off, lock timeouts,
# server starts); on 2 cores, 3 workers took 55 s against 62-64 s for 2, and 4 no less than 3.
test-workers = $(if $(filter auto,$(strip $(TEST_WORKERS))),$(shell $(PYTHON) -c 'import os; print((os.cpu_count() or 1) + 1)'),$(strip $(TEST_WORKERS)))
.PHONY: check
check: ## [TEST_WORKERS=] `make test` without its set-up: ruff, ruff format --check, mypy, pytest (`ops bench --suite` times it)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest -n $(test-workers)

.PHONY: policy
policy: setup $(TOOLS_VENV)/.installed ## [ENV= STACK=] checkov on the synthesized stacks (default: every stack); every finding needs a recorded reason
	$(OPS) policy $(env-args) $(stack-args)

# --- daily commands -----------------------------------------------------------------------
.PHONY: plan
plan: setup ## [ENV= STACK= LOCK_TIMEOUT= RECONFIGURE=1] Synthesize ENV, then terraform init + plan per stack, saved to plans/
	$(OPS) plan --env $(strip $(ENV)) $(stack-args) --lock-timeout $(strip $(LOCK_TIMEOUT)) $(call flag,RECONFIGURE,--reconfigure)

.PHONY: diff
diff: setup ## [ENV= STACK= LOCK_TIMEOUT= MIGRATE_STATE=1] cdktf diff of ENV's stacks, one at a time
	$(OPS) diff --env $(strip $(ENV)) $(stack-args) --lock-timeout $(strip $(LOCK_TIMEOUT)) $(call flag,MIGRATE_STATE,--migrate-state)

.PHONY: deploy
deploy: setup ## [ENV= STACK= LOCK_TIMEOUT= AUTO_APPROVE=1 DIRECT=1 MIGRATE_STATE=1] Apply the plans `make plan` saved, in dependency order; shows them and asks first
	$(OPS) deploy --env $(strip $(ENV)) $(stack-args) --lock-timeout $(strip $(LOCK_TIMEOUT)) $(call flag,AUTO_APPROVE,--auto-approve) $(call flag,DIRECT,--direct) $(call flag,MIGRATE_STATE,--migrate-state)

.PHONY: destroy
destroy: setup ## [ENV= STACK= LOCK_TIMEOUT= AUTO_APPROVE=1 FORCE_PRD=1] cdktf destroy in reverse order (bootstrap only if named)
	$(OPS) destroy --env $(strip $(ENV)) $(stack-args) --lock-timeout $(strip $(LOCK_TIMEOUT)) $(call flag,AUTO_APPROVE,--auto-approve) $(call flag,FORCE_PRD,--force-production)

# --- the MLflow database -------------------------------------------------------------------
.PHONY: db-upgrade
db-upgrade: setup ## [ENV= TO=8.4 AUTO_APPROVE=1 FORCE_PRD=1] The database's MySQL major upgrade: preflight, snapshot, the file set for make plan/deploy; again: resume or check (runbook mysql-major-upgrade.md)
	$(OPS) db upgrade-engine --env $(strip $(ENV)) --to $(strip $(TO)) $(call flag,AUTO_APPROVE,--auto-approve) $(call flag,FORCE_PRD,--force-production)

# --- state --------------------------------------------------------------------------------
.PHONY: state-migrate
state-migrate: setup ## [ENV= TO=local] Move bootstrap-ENV's local state into its own S3 bucket (or back), lineage checked
	$(OPS) state migrate --env $(strip $(ENV)) $(if $(strip $(TO)),--to $(strip $(TO)))

.PHONY: state-adopt
state-adopt: setup ## [ENV= STACK= FROM=] Put an existing state (old HCL repo) under a stack's key, lineage kept, no destroy
	$(OPS) state adopt --env $(strip $(ENV)) --stack $(strip $(STACK)) --from $(strip $(FROM))

.PHONY: adopt
adopt: setup ## [ENV= FROM= BUNDLE_DIR= BRANCHES= BUNDLE_STATE= UNBIND=] Adopt a Databricks bundle's state into databricks-ENV (runbook adopt-state.md)
	$(OPS) adopt --env $(strip $(ENV)) --from $(strip $(FROM)) --bundle-dir $(strip $(BUNDLE_DIR)) $(foreach b,$(subst $(comma), ,$(strip $(BRANCHES))),--branch $(b)) $(if $(strip $(BUNDLE_STATE)),--bundle-state $(strip $(BUNDLE_STATE))) $(call flag,UNBIND,--unbind)

.PHONY: mlflow-upgrade
mlflow-upgrade: setup ## [ENV= AUTO_APPROVE=1 FORCE_PRD=1] MLflow to the env file's release: preflight, snapshot, migrations, refresh, check (runbook mlflow-upgrade.md)
	$(OPS) mlflow upgrade --env $(strip $(ENV)) $(call flag,AUTO_APPROVE,--auto-approve) $(call flag,FORCE_PRD,--force-production)

.PHONY: mlflow-rollback
mlflow-rollback: setup ## [ENV= AUTO_APPROVE=1 FORCE_PRD=1] Back to the release before an upgrade: its snapshot restored (runbook mlflow-upgrade.md)
	$(OPS) mlflow rollback --env $(strip $(ENV)) $(call flag,AUTO_APPROVE,--auto-approve) $(call flag,FORCE_PRD,--force-production)

.PHONY: env-add
env-add: setup ## [NAME= FROM=] A new environment from an existing one: its two files (own names, target, CIDRs), its CI entries, snapshots and diagrams
	$(OPS) env add $(strip $(NAME)) --from $(strip $(FROM))

.PHONY: state-unlock
state-unlock: setup ## [ENV= STACK= LOCK_ID=] Show (or, with LOCK_ID=, release) the state lock of one stack
	$(OPS) state unlock --env $(strip $(ENV)) --stack $(strip $(STACK)) $(if $(strip $(LOCK_ID)),--lock-id $(strip $(LOCK_ID)))

# --- formatting, linting, generated docs, benchmarks ----------------------------------------
.PHONY: fmt
fmt: setup ## [CHECK=1] Format Python (ruff) and the environment files (terraform fmt)
	$(OPS) fmt $(call flag,CHECK,--check)

.PHONY: lint
lint: setup $(TOOLS_VENV)/.installed ## [] ruff, the formatting check, and the GitHub workflow linters (check-jsonschema, zizmor, actionlint)
	$(OPS) lint

.PHONY: provider-locks
provider-locks: setup ## [ENV= CHECK=1] Write provider_locks/<kind>.terraform.lock.hcl (needs the provider registry); CHECK=1: fail if one is missing or stale
	$(OPS) provider-locks $(if $(strip $(ENV)),--env $(strip $(ENV))) $(call flag,CHECK,--check)

.PHONY: diagram
diagram: setup ## [CHECK=1] Architecture diagrams from the synthesized stacks
	$(OPS) diagram $(call flag,CHECK,--check)

.PHONY: docs
docs: setup ## [CHECK=1] Write docs/configuration.md from the configuration models
	$(OPS) docs $(call flag,CHECK,--check)

.PHONY: bench
bench: setup ## [RUNS= SELECTION=1 SUITE=1 THROUGHPUT=1] Synthesis time and python/node peak memory against a naive floor app, with the targets
	$(OPS) bench --runs $(strip $(RUNS)) $(call flag,SELECTION,--selection) $(call flag,SUITE,--suite) $(call flag,THROUGHPUT,--throughput)

.PHONY: soak
soak: setup ## [] Soak tests: the repeated state-lock contention rounds (pytest -m soak; CI runs it)
	$(PY) -m pytest -m soak

.PHONY: runbooks
runbooks: setup $(TOOLS_VENV)/.installed $(IAM_SIMULATE) ## [] The runbooks that are commands, run as written on a scratch copy, each ending with its `make check` (pytest -m runbook; CI runs it)
	$(PY) -m pytest -m runbook

.PHONY: rehearse
rehearse: setup ## [ENV= ARGS=] Boot rehearsal: the synthesized MLflow boot script against real servers on 127.0.0.1
	rehearsal/run.sh $(foreach e,$(subst $(comma), ,$(ENV)),--env $(e)) $(ARGS)

.PHONY: terrain-check
terrain-check: setup ## [RUNS=] CDK Terrain exit path: port to a scratch copy, synthesize both, compare the JSON, run its stack tests
	$(OPS) terrain check --runs $(strip $(RUNS))

.PHONY: clean
clean: ## [] Remove cdktf.out and plans/ (never local_state/)
	rm -rf cdktf.out .cdktf.out.new-* .cdktf.out.old-* plans
