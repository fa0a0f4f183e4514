"""CDKTF entry point (``cdktf.json``: ``app``): load every environment, synthesize, summarize.

The cdktf CLI runs this for ``cdktf synth``/``diff``/``deploy``; the operations CLI (``python -m
ops``) calls the same functions in-process. Configuration problems are printed one per line as
``error: file: key: problem``, exit code 2, no traceback, and the previous ``cdktf.out`` is left
untouched.

Environment variables (all optional):
  CDKTF_OUTDIR   output directory (set by the cdktf CLI; default: cdktf.out)
  MLOPS_ENVS     comma-separated environments to synthesize (default: every environment)
  MLOPS_STACKS   comma-separated stack kinds: bootstrap, mlflow, databricks (default: all), e.g.
                 ``MLOPS_STACKS=databricks npx cdktf deploy databricks-dev`` never loads AWS
  MLOPS_QUIET    set to 1 to skip the summary
  MLOPS_GC_PAUSE set to 0 to import provider packages with the garbage collector running
                 (only for the benchmark, which measures what pausing it saves)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from platform_config import advisories, naming, placeholders
from platform_config.errors import ConfigError, Problem
from platform_config.loader import load


def _list(name: str) -> list[str]:
    return [v.strip() for v in os.environ.get(name, "").split(",") if v.strip()]


def main() -> int:
    try:
        envs = load(Path.cwd(), _list("MLOPS_ENVS"), "$MLOPS_ENVS")
        kinds = tuple(_list("MLOPS_STACKS")) or naming.STACK_KINDS
        unknown = [k for k in kinds if k not in naming.STACK_KINDS]
        if unknown:
            known = ", ".join(naming.STACK_KINDS)
            raise ConfigError(
                [Problem("$MLOPS_STACKS", "", f"unknown stack kind {k!r} (known: {known})") for k in unknown]
            )
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} configuration problem(s); nothing was synthesized.", file=sys.stderr)
        return 2
    for line in placeholders.summary([f for env in envs for f in placeholders.find(env)]):
        print(f"warning: {line}", file=sys.stderr)
    for line in advisories.lines(envs):
        print(f"warning: {line}", file=sys.stderr)
    from stacks.app import summary, synthesize  # late: configuration errors never pay for jsii

    outdir = synthesize(
        envs,
        kinds,
        Path(os.environ.get("CDKTF_OUTDIR", "cdktf.out")),
        pause_gc=os.environ.get("MLOPS_GC_PAUSE") != "0",
    )
    if os.environ.get("MLOPS_QUIET") != "1":
        print(summary(outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
