"""``ops deploy``, ``ops diff`` and ``ops destroy``: one stack at a time, in dependency order.

The environment is synthesized once (only the selected kinds, so unused providers are never
loaded); the stacks run in the order of the stack dependencies cdktf recorded in
``manifest.json`` (stacks without a dependency between them in ``naming.STACK_KINDS`` order:
bootstrap first, since it holds everybody's state), destroy in the reverse order, stopping at the
first failure.

deploy applies exactly the plans ``ops plan`` saved: ``terraform apply plans/<stack>.tfplan`` in
each stack directory. Before anything is applied, every selected stack must have a saved plan
made from the ``cdk.tf.json`` synthesized now (sha256 in its record) and its state must still be
the one it was planned against (lineage and serial, read after ``terraform init``); otherwise
nothing is applied. Terraform checks the second point once more itself ("Saved plan is stale").
``--direct`` (implied by ``--migrate-state``) runs ``cdktf deploy <stack>`` instead, which plans
and applies in one go: for a backend change, which a saved plan cannot carry.

A first apply of ``databricks-<env>`` (its state missing or empty), on either path, is refused
while the old bundle's target still manages its resources or objects of its names exist
(``first_apply_problems``, asking the workspace with ``ops.databricks_api`` credentials): adopt
first (``ops adopt``).

diff and destroy run ``cdktf <command> <stack> --skip-synth``;
``--ignore-missing-stack-dependencies`` lets such a call name one stack of a chain.

Deploy and destroy ask for confirmation on standard input (type the environment name) unless
``--auto-approve``; deploy first prints the saved plans it is about to apply. Destroy refuses a
production environment (``is_production = true`` in the loaded environment) unless
``--force-production``, and leaves the bootstrap stack alone unless it is named with ``--stack``:
it holds the state of every other stack.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from ops import adopt, synth
from ops.databricks_api import Workspace, token_source
from ops.plan import (
    SavedPlan,
    init_args,
    plan_dir,
    planfile,
    saved_plan,
    state_moved,
    text_file,
)
from ops.runner import (
    ROOT,
    CommandError,
    Console,
    StateInfo,
    Terraform,
    UsageError,
    automation_env,
    cdktf_command,
    terraform_binary,
)
from ops.synth import Target
from platform_config import naming
from platform_config.loader import Environment, load

# The Terraform command each cdktf command runs: cdktf has no lock-timeout option, but Terraform
# reads extra arguments per subcommand from TF_CLI_ARGS_<subcommand>.
TERRAFORM_SUBCOMMAND = {"deploy": "apply", "destroy": "destroy", "diff": "plan"}


def stack_order(manifest: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    """``names`` in dependency order (the manifest's ``dependencies``), ties in kind order."""
    stacks = manifest.get("stacks")
    if not isinstance(stacks, dict):
        raise CommandError("manifest.json lists no stacks: synthesize first")
    missing = [n for n in names if n not in stacks]
    if missing:
        raise CommandError(f"not synthesized: {', '.join(missing)}")
    graph = {n: [d for d in stacks[n].get("dependencies", []) if d in names] for n in names}
    sorter = TopologicalSorter(graph)
    try:
        sorter.prepare()
    except CycleError as exc:
        raise CommandError(f"the stacks depend on each other in a cycle: {exc.args[1]}") from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(
            sorter.get_ready(), key=lambda n: naming.STACK_KINDS.index(naming.parse_stack_id(n)[0])
        )
        order += ready
        sorter.done(*ready)
    return order


def cdktf_args(command: str, target: Target, migrate_state: bool, color: bool) -> list[str]:
    args = [command, target.name, "--skip-synth", "--output", str(target.outdir)]
    if command in ("deploy", "destroy"):
        # Confirmed already (our prompt or --auto-approve); cdktf's own prompt needs a terminal.
        args += ["--auto-approve", "--ignore-missing-stack-dependencies"]
    if migrate_state and command in ("deploy", "diff"):
        args.append("--migrate-state")
    if not color:
        args.append("--no-color")
    return args


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    helps = {
        "deploy": "apply the saved plans of ENV's stacks in dependency order; asks first unless --auto-approve",
        "diff": "cdktf diff of ENV's stacks, one at a time",
        "destroy": "cdktf destroy in reverse order (bootstrap only if named); production needs --force-production",
    }
    for command, text in helps.items():
        parser = subparsers.add_parser(command, help=text, description=text)
        synth.add_env_option(parser)
        synth.add_stack_option(parser)
        parser.add_argument("--lock-timeout", default="0s", help="wait this long for a held state lock")
        if command != "diff":
            parser.add_argument("--auto-approve", action="store_true", help="no confirmation prompt")
        if command != "destroy":
            parser.add_argument(
                "--migrate-state",
                action="store_true",
                help="approve a backend change (cdktf --migrate-state; deploy: implies --direct)",
            )
        if command == "deploy":
            parser.add_argument(
                "--direct",
                action="store_true",
                help="cdktf deploy (plans and applies at once) instead of applying the saved plans",
            )
        if command == "destroy":
            parser.add_argument("--force-production", action="store_true", help="allow destroying production")
        parser.add_argument("--no-synth", action="store_true", help="use what is already in cdktf.out")
        parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    command: str = args.command
    console = Console()
    # Loading fails safe: a configuration problem stops here, before anything is touched.
    [env] = load(args.root, [args.env], "--env")
    if command != "destroy" and (refused := synth.refuse_placeholders([env])) is not None:
        return refused
    kinds = synth.kinds(args.stack)
    if command == "destroy":
        if not args.stack:
            kinds = tuple(k for k in kinds if k != "bootstrap")
        if env.settings.is_production and not args.force_production:
            raise UsageError(
                f"refusing to destroy production environment {env.name!r} ({env.tfvars_file}: "
                "is_production = true); if you really mean it, run again with FORCE_PRD=1 (--force-production)"
            )
    if not kinds:
        raise UsageError("no stack selected")
    out = synth.outdir(args.root).resolve()
    if not args.no_synth:
        synth.synthesize([env], kinds, out, console)
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise CommandError(f"{out / 'manifest.json'}: cannot read the synthesized manifest ({exc})") from None
    order = stack_order(manifest, [naming.stack_id(k, env.name) for k in kinds])
    selected = [Target(*naming.parse_stack_id(name), out) for name in order]
    if command == "destroy":
        selected.reverse()
    if command == "deploy" and not (args.direct or args.migrate_state):
        return _apply_saved_plans(selected, args, console, env)
    if command == "deploy":
        problems = []
        for target in selected:
            if target.kind == "databricks":
                tf = Terraform(target.directory, env=automation_env())
                tf.run(*init_args(args.root, target))
                problems += first_apply_problems(env, target, tf.pull(), args)
        if problems:
            raise CommandError("nothing applied:\n  " + "\n  ".join(problems))
    if command != "diff" and not args.auto_approve and not _confirmed(command, selected, console):
        return 1
    return _run_stacks(command, selected, args, console)


def _confirmed(command: str, selected: list[Target], console: Console, notes: Sequence[str] = ()) -> bool:
    env = selected[0].env
    names = ", ".join(t.name for t in selected)
    verb = "Deploy" if command == "deploy" else "DESTROY every resource of"
    lines = [f"{verb} {len(selected)} stack(s) in environment {env!r}, in this order: {names}", *notes]
    expected = env if command == "deploy" else f"destroy {env}"
    return console.confirm("\n".join(lines), expected)


# Terraform's words when the state changed after the plan was made (checked again at apply).
_STALE_PLAN = "Saved plan is stale"


def first_apply_problems(
    env: Environment, target: Target, current: StateInfo | None, args: argparse.Namespace
) -> list[str]:
    """A first apply of ``databricks-<env>`` (no state, or one holding nothing) is refused while the
    bundle's target still manages its resources or objects of its names exist (``ops.adopt``): the
    apply would duplicate the jobs and fail on the model and experiment. Needs Databricks
    credentials (``ops.databricks_api.token_source``); without them the apply is refused too."""
    if target.kind != "databricks" or (current is not None and current.resources > 0):
        return []
    names = env.names.databricks
    base = os.environ.get("MLOPS_DATABRICKS_URL") or names.host  # tests: a fake workspace
    try:
        tokens = token_source(base, names.oidc_audience)
    except UsageError as exc:
        raise UsageError(
            f"{target.name} has no state yet, and a first apply checks the workspace first: {exc}"
        ) from None
    problems = adopt.first_apply_problems(names, Workspace(base, tokens))
    return [
        f"{target.name}: first apply refused: {p}; adopt the bundle's {names.target} deployment first "
        f"(`python -m ops adopt --env {env.name} ...`, docs/runbooks/adopt-state.md) or remove it"
        for p in problems
    ]


def _apply_saved_plans(
    selected: list[Target], args: argparse.Namespace, console: Console, env: Environment
) -> int:
    """Check every saved plan first (code, then state), show them, ask, then apply them in order."""
    plans = plan_dir(args.root)
    problems: list[str] = []
    saved: dict[str, SavedPlan] = {}
    for target in selected:
        try:
            saved[target.name] = saved_plan(plans, target)
        except CommandError as exc:
            problems.append(str(exc))
    if problems:
        raise CommandError("nothing applied:\n  " + "\n  ".join(problems))
    tf_env = automation_env()
    for target in selected:
        init = console.run(
            [terraform_binary(), *init_args(args.root, target)],
            label=target.name,
            env_name=target.env,
            step="terraform init",
            cwd=target.directory,
            env=tf_env,
            show_stdout=False,
        )
        if not init.ok:
            problems.append(f"{target.name}: terraform init failed (its output is above)")
            continue
        current = Terraform(target.directory, env=tf_env).pull()
        problems += first_apply_problems(env, target, current, args)
        moved = state_moved(saved[target.name], current)
        if moved:
            problems.append(
                f"{target.name}: {moved}: the saved plan is stale; "
                f"run `make plan ENV={target.env}` and review the new plan"
            )
    if problems:
        raise CommandError("nothing applied:\n  " + "\n  ".join(problems))
    notes = []
    for target in selected:
        plan = saved[target.name]
        text = text_file(plans, target.name)
        if text.is_file():
            for line in text.read_text().rstrip().splitlines():
                console.line(f"{target.name} | {line}")
        age = max(0.0, time.time() - plan.planned_at) / 60
        notes.append(f"  {target.name}: {plan.line} (planned {age:.0f} min ago against {plan.against()})")
    console.line("saved plans to apply:\n" + "\n".join(notes))
    if not args.auto_approve and not _confirmed("deploy", selected, console):
        return 1
    for done, target in enumerate(selected):
        if not _apply(target, planfile(plans, target.name).resolve(), args.lock_timeout, tf_env, console):
            return _stopped("deploy", selected, done, console)
    console.line(f"deploy finished ({selected[0].env}): {', '.join(t.name for t in selected)}")
    return 0


def _apply(
    target: Target, plan: Path, lock_timeout: str, tf_env: Mapping[str, str], console: Console
) -> bool:
    color = [] if sys.stdout.isatty() and "NO_COLOR" not in tf_env else ["-no-color"]
    result = console.run(
        [terraform_binary(), "apply", "-input=false", f"-lock-timeout={lock_timeout}", *color, str(plan)],
        label=target.name,
        env_name=target.env,
        step="terraform apply (saved plan)",
        cwd=target.directory,
        env=tf_env,
    )
    if result.ok:
        return True
    if _STALE_PLAN in result.stdout + result.stderr:
        console.error(
            f"{target.name} | Terraform refused the saved plan: the state changed after it was made. "
            f"Nothing of this stack was applied; run `make plan ENV={target.env}` and review the new plan."
        )
    errored = target.directory / "errored.tfstate"
    if errored.is_file():
        console.error(
            f"{target.name} | Terraform could not save the state and wrote it to {errored}: "
            "push it before anything else (docs/runbooks/stuck-lock.md)"
        )
    return False


def _run_stacks(command: str, selected: list[Target], args: argparse.Namespace, console: Console) -> int:
    env = selected[0].env
    names = ", ".join(t.name for t in selected)
    variable = f"TF_CLI_ARGS_{TERRAFORM_SUBCOMMAND[command]}"
    tf_env = automation_env()
    tf_env[variable] = f"{tf_env.get(variable, '')} -lock-timeout={args.lock_timeout}".strip()
    migrate_state = getattr(args, "migrate_state", False)
    color = sys.stdout.isatty() and "NO_COLOR" not in tf_env
    for done, target in enumerate(selected):
        name = target.name

        def strip_own_name(text: str, name: str = name) -> str:
            # cdktf already starts its lines with the stack name; ours comes first.
            return text[len(name) :].lstrip() if text.startswith(name) else text

        result = console.run(
            [*cdktf_command(), *cdktf_args(command, target, migrate_state, color)],
            label=name,
            env_name=env,
            step=f"cdktf {command}",
            cwd=ROOT,
            env=tf_env,
            stdout_filter=strip_own_name,
        )
        if not result.ok:
            return _stopped(command, selected, done, console)
    console.line(f"{command} finished ({env}): {names}")
    return 0


def _stopped(command: str, selected: Sequence[Target], failed: int, console: Console) -> int:
    rest = [t.name for t in selected[failed + 1 :]]
    tail = f"; not run: {', '.join(rest)}" if rest else ""
    console.error(f"{command} stopped: {selected[failed].name} failed{tail}")
    return 1
