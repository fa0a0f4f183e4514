"""``python -m ops <command>``: argument parsing and the one place errors become exit codes.

Every command module exposes ``add_parser(subparsers)`` (registers its parser with
``set_defaults(func=run)``) and ``run(args) -> int``. Errors are one line each, no traceback:
a configuration problem prints ``error: file: key: problem`` (exit 2), a bad argument
``error: ...`` (exit 2), a failed step ``error: ...`` (exit 1).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ops import (
    adopt,
    bench,
    ci_command,
    db,
    deploy,
    diagram,
    docs,
    env,
    lint,
    mlflow,
    plan,
    policy,
    provider_locks,
    run_job,
    state,
    synth,
    terrain,
)
from ops.runner import ROOT, CommandError, UsageError
from platform_config.errors import ConfigError

COMMANDS = (
    synth,
    plan,
    deploy,
    state,
    ci_command,
    adopt,
    env,
    policy,
    diagram,
    bench,
    lint,
    docs,
    terrain,
    provider_locks,
    run_job,
    mlflow,
    db,
)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m ops", description="Operations CLI of mlops-infra.")
    top.add_argument(
        "--root",
        type=Path,
        default=ROOT,
        help="repository whose environment files, cdktf.out and plans/ are used (default: this checkout)",
    )
    subparsers = top.add_subparsers(dest="command", required=True, metavar="<command>")
    for module in COMMANDS:
        module.add_parser(subparsers)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.root = args.root.resolve()
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} configuration problem(s); nothing was done.", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code
