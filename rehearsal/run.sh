#!/usr/bin/env bash
# `make rehearse`: the boot rehearsal of the MLflow instances. Arguments go to the harness,
# e.g. `rehearsal/run.sh --env dev --keep /tmp/rehearsal`.
set -euo pipefail
cd "$(dirname "$0")/.."
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CHECKPOINT_DISABLE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Synthesis and three MLflow servers load a 2-core machine: one heavy job at a time where a lock exists.
if [ -n "${HEAVY_LOCK:-}" ]; then
  exec flock "$HEAVY_LOCK" .venv/bin/python -m rehearsal "$@"
fi
exec .venv/bin/python -m rehearsal "$@"
