"""``make deploy``, ``make diff`` and ``make destroy``: the cdktf CLI, one stack at a time, in order.

Usage::

    python scripts/deploy.py deploy  --env dev [--stack mlflow] [--auto-approve] [--migrate-state]
    python scripts/deploy.py diff    --env dev [--stack mlflow]
    python scripts/deploy.py destroy --env dev [--stack mlflow] [--auto-approve] [--force-production]

The selected environment is synthesized once (only the selected kinds, so unused providers are
never loaded), then ``cdktf <command> <stack> --skip-synth`` runs per stack: deploy in dependency
order (bootstrap first, since it holds everybody's state), destroy in the reverse order. Our stacks
share no cross-stack references, so one cdktf call with several stacks would run them in
parallel; one call per stack keeps the order and stops at the first failure.

Deploy and destroy ask for confirmation on standard input (type the environment name) unless
``--auto-approve``. Destroy refuses a production environment (``is_production = true``) unless
``--force-production``, and leaves the bootstrap stack alone unless it is named with ``--stack``:
it holds the state of every other stack.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.plan import DEFAULT_PLAN_DIR, recorded_plan, terraform_env
from scripts.stack_runner import (
    DEFAULT_OUTDIR,
    ROOT,
    Console,
    Target,
    UsageError,
    cdktf_command,
    check_env_name,
    confirm,
    parse_kinds,
    synthesize,
    targets,
)

COMMANDS = ("deploy", "diff", "destroy")


def is_production(env: str, root: Path = ROOT) -> bool:
    """``is_production`` of the environment's tfvars; ``prd`` always counts.

    Reads only that one file: a destroy of dev must not depend on every other environment's
    file being valid. A file that cannot be read counts as production (fail safe).
    """
    from platform_config import hcl
    from platform_config.loader import TFVARS_DIR

    path = root / TFVARS_DIR / f"{env}.tfvars"
    if not path.is_file():
        raise UsageError(f"unknown environment {env!r}: {TFVARS_DIR}/{env}.tfvars does not exist")
    try:
        values, problems = hcl.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, ValueError):
        return True
    return env == "prd" or bool(problems) or values.get("is_production") is not False


def select_targets(command: str, env: str, raw_kinds: str, outdir: Path) -> list[Target]:
    kinds = parse_kinds(raw_kinds)
    if command == "destroy" and not raw_kinds.strip():
        kinds = tuple(k for k in kinds if k != "bootstrap")
    return targets(env, kinds, outdir, reverse=command == "destroy")


def cdktf_args(command: str, target: Target, migrate_state: bool, color: bool) -> list[str]:
    args = [command, target.name, "--skip-synth", "--output", str(target.outdir)]
    if command in ("deploy", "destroy"):
        # Confirmed already (our prompt or AUTO_APPROVE=1); cdktf's own prompt needs a terminal.
        args.append("--auto-approve")
    if migrate_state and command in ("deploy", "diff"):
        args.append("--migrate-state")
    if not color:
        args.append("--no-color")
    return args


def plan_notes(selected: Sequence[Target], plan_dir: Path) -> list[str]:
    """What ``make plan`` found for each stack, while it is still current."""
    notes = []
    for target in selected:
        record = recorded_plan(plan_dir, target)
        if record is None:
            notes.append(f"  {target.name}: no current plan (run `make plan ENV={target.env}` to review)")
        else:
            age = max(0.0, time.time() - float(record.get("planned_at", 0)))
            notes.append(f"  {target.name}: {record.get('line', '?')} (planned {age / 60:.0f} min ago)")
    return notes


def run(
    command: str,
    env: str,
    raw_kinds: str = "",
    *,
    outdir: Path = DEFAULT_OUTDIR,
    plan_dir: Path = DEFAULT_PLAN_DIR,
    auto_approve: bool = False,
    force_production: bool = False,
    migrate_state: bool = False,
    skip_synth: bool = False,
    color: bool = False,
    console: Console | None = None,
    stdin: TextIO | None = None,
) -> int:
    console = console or Console()
    try:
        selected = _checked_targets(command, env, raw_kinds, outdir, force_production)
    except UsageError as exc:
        console.line(f"error: {exc}", console.err)
        return 2
    if not _ready(console, selected, skip_synth):
        return 1
    if command != "diff" and not auto_approve and not _confirmed(command, selected, plan_dir, console, stdin):
        return 1
    return _run_stacks(command, selected, migrate_state, color, console)


def _checked_targets(
    command: str, env: str, raw_kinds: str, outdir: Path, force_production: bool
) -> list[Target]:
    if command not in COMMANDS:
        raise UsageError(f"unknown command {command!r} (known: {', '.join(COMMANDS)})")
    check_env_name(env)
    selected = select_targets(command, env, raw_kinds, outdir.resolve())
    if not selected:
        raise UsageError("no stack selected")
    if command == "destroy" and is_production(env) and not force_production:
        raise UsageError(
            f"refusing to destroy production environment {env!r}; "
            "if you really mean it, run again with FORCE_PRD=1 (--force-production)"
        )
    return selected


def _ready(console: Console, selected: list[Target], skip_synth: bool) -> bool:
    """Synthesized (only the selected kinds of the one environment) and present."""
    env = selected[0].env
    if not skip_synth and not synthesize(console, env, [t.kind for t in selected], selected[0].outdir):
        return False
    missing = [t.name for t in selected if not (t.directory / "cdk.tf.json").is_file()]
    if missing:
        console.line(f"error: not synthesized: {', '.join(missing)}", console.err)
        return False
    return True


def _confirmed(
    command: str, selected: list[Target], plan_dir: Path, console: Console, stdin: TextIO | None
) -> bool:
    env = selected[0].env
    names = ", ".join(t.name for t in selected)
    verb = "Deploy" if command == "deploy" else "DESTROY every resource of"
    lines = [f"{verb} {len(selected)} stack(s) in environment {env!r}, in this order: {names}"]
    if command == "deploy":
        lines += plan_notes(selected, plan_dir)
    expected = env if command == "deploy" else f"destroy {env}"
    return confirm("\n".join(lines), expected, console, stdin)


def _run_stacks(
    command: str, selected: list[Target], migrate_state: bool, color: bool, console: Console
) -> int:
    env = selected[0].env
    names = ", ".join(t.name for t in selected)
    cli = cdktf_command()
    tf_env = terraform_env()
    # Plain line-by-line output from cdktf: no spinner redrawn over a pipe.
    tf_env.setdefault("CI", "1")
    done: list[str] = []
    for target in selected:
        name = target.name

        def strip_own_name(text: str, name: str = name) -> str:
            # cdktf already starts its lines with the stack name; ours comes first.
            return text[len(name) :].lstrip() if text.startswith(name) else text

        result = console.run(
            [*cli, *cdktf_args(command, target, migrate_state, color)],
            label=name,
            env_name=env,
            step=f"cdktf {command}",
            cwd=ROOT,
            env=tf_env,
            stdout_filter=strip_own_name,
        )
        if not result.ok:
            rest = [t.name for t in selected if t.name not in done and t.name != name]
            tail = f"; not run: {', '.join(rest)}" if rest else ""
            console.line(f"{command} stopped: {name} failed{tail}", console.err)
            return 1
        done.append(name)
    console.line(f"{command} finished ({env}): {names}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("--env", required=True)
    parser.add_argument("--stack", default="", help="stack kinds, comma-separated (default: all)")
    parser.add_argument("--outdir", type=Path, default=DEFAULT_OUTDIR)
    parser.add_argument("--plan-dir", type=Path, default=DEFAULT_PLAN_DIR)
    parser.add_argument("--auto-approve", action="store_true")
    parser.add_argument("--force-production", action="store_true")
    parser.add_argument("--migrate-state", action="store_true", help="approve a backend change")
    parser.add_argument("--no-synth", action="store_true", help="use what is already in --outdir")
    parser.add_argument(
        "--color", action="store_true", default=os.environ.get("NO_COLOR") is None and sys.stdout.isatty()
    )
    args = parser.parse_args(argv)
    return run(
        args.command,
        args.env,
        args.stack,
        outdir=args.outdir,
        plan_dir=args.plan_dir,
        auto_approve=args.auto_approve,
        force_production=args.force_production,
        migrate_state=args.migrate_state,
        skip_synth=args.no_synth,
        color=args.color,
    )


if __name__ == "__main__":
    sys.exit(main())
