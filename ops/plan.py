"""``ops plan``: synthesize one environment, then ``terraform init`` + ``plan`` in each stack directory.

Each stack gets ``terraform init -input=false`` (the S3 backend is in the synthesized JSON; the
committed provider lock file, when there is one, is installed first and used read-only), the
state it is planned against is read (``state pull``: lineage and serial), then ``terraform plan
-json -detailed-exitcode -out=plans/<stack>.tfplan``; the summary is Terraform's own
``change_summary`` message. Every stack is planned even when an earlier one fails, so CI shows
the whole picture; the exit code is 1 if any stack failed (with ``--detailed-exitcode``: 2 if
none failed and some stack has changes, the drift check's signal).

Next to each saved plan: ``plans/<stack>.json``, the record that binds it to the ``cdk.tf.json``
it was made from and to the state it was planned against (both checked by ``ops deploy`` before
it applies exactly that plan), and ``plans/<stack>.txt``, ``terraform show -no-color`` of it:
what a reviewer reads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ops import provider_locks, synth
from ops.runner import (
    CommandError,
    Console,
    StateInfo,
    Terraform,
    UsageError,
    automation_env,
    terraform_binary,
)
from ops.synth import Target
from platform_config import naming
from platform_config.loader import load

# One PR comment holds both environments' plans; GitHub refuses comments over 65,536 characters.
MAX_PLAN_TEXT = 25_000


def plan_dir(root: Path) -> Path:
    return root / "plans"


@dataclass(frozen=True)
class PlanSummary:
    """The counts of Terraform's ``change_summary`` (a replacement is one add and one destroy)."""

    add: int = 0
    change: int = 0
    destroy: int = 0
    imports: int = 0
    forget: int = 0

    @property
    def has_changes(self) -> bool:
        return any(asdict(self).values())

    def line(self) -> str:
        if not self.has_changes:
            return "no changes"
        text = f"{self.add} to add, {self.change} to change, {self.destroy} to destroy"
        extras = [(self.imports, "to import"), (self.forget, "to forget")]
        return text + "".join(f", {n} {what}" for n, what in extras if n)


def ui_messages(stdout: str) -> list[dict[str, Any]]:
    """The JSON messages of ``terraform plan -json`` (other lines, if any, are skipped)."""
    messages = []
    for line in stdout.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            messages.append(doc)
    return messages


def change_summary(messages: Iterable[dict[str, Any]]) -> PlanSummary | None:
    for message in messages:
        if message.get("type") == "change_summary":
            changes = message.get("changes") or {}
            return PlanSummary(
                add=int(changes.get("add", 0)),
                change=int(changes.get("change", 0)),
                destroy=int(changes.get("remove", 0)),
                imports=int(changes.get("import", 0)),
                forget=int(changes.get("forget", 0)),
            )
    return None


def _is_error(message: dict[str, Any]) -> bool:
    return message.get("type") == "diagnostic" and message.get("@level") == "error"


def _shown(line: str) -> str | None:
    """A plan -json line as a person reads it; errors are shown on stderr after the run instead."""
    try:
        message = json.loads(line)
    except ValueError:
        return line
    if not isinstance(message, dict):
        return line
    return None if _is_error(message) else str(message.get("@message", line))


def _diagnostic_lines(message: dict[str, Any]) -> list[str]:
    diagnostic = message.get("diagnostic") or {}
    lines = [f"Error: {diagnostic.get('summary', message.get('@message', ''))}"]
    lines += [f"  {text}" for text in str(diagnostic.get("detail", "")).splitlines()]
    return lines


@dataclass(frozen=True)
class StackPlan:
    stack: str
    env: str
    ok: bool
    summary: PlanSummary | None
    failed_step: str | None
    elapsed: float
    text: str = ""
    saved: SavedPlan | None = None

    @property
    def against(self) -> str:
        """What the saved plan is bound to, for the reviewer: "state serial 12, code 3f2a..."."""
        saved = self.saved
        return "" if saved is None else f"{saved.against()}, code {saved.source_sha256[:12]}"

    def line(self) -> str:
        if self.ok and self.summary is not None:
            return self.summary.line()
        return f"FAILED at {self.failed_step}"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_hash(stack_dir: Path) -> str:
    return sha256_file(stack_dir / "cdk.tf.json")


@dataclass(frozen=True)
class SavedPlan:
    """The record ``ops plan`` writes next to ``plans/<stack>.tfplan`` (``plans/<stack>.json``)."""

    stack: str
    env: str
    line: str
    changes: bool
    source_sha256: str
    plan_sha256: str
    # The state the plan was made against; None: the backend held no state yet.
    state: StateInfo | None
    planned_at: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SavedPlan:
        doc = json.loads(text)
        state = doc.pop("state")
        return cls(**doc, state=None if state is None else StateInfo(**state))

    def against(self) -> str:
        return "no state yet" if self.state is None else f"state serial {self.state.serial}"


def planfile(plans: Path, stack: str) -> Path:
    return plans / f"{stack}.tfplan"


def record_file(plans: Path, stack: str) -> Path:
    return plans / f"{stack}.json"


def text_file(plans: Path, stack: str) -> Path:
    return plans / f"{stack}.txt"


def saved_plan(plans: Path, target: Target) -> SavedPlan:
    """The saved plan of ``target`` if it can be applied to the code in ``cdktf.out`` now;
    otherwise CommandError saying why and what to do (the state is checked by the caller)."""
    name = target.name
    again = f"run `make plan ENV={target.env}` and review the new plan"
    path, record = planfile(plans, name), record_file(plans, name)
    if not path.is_file() or not record.is_file():
        raise CommandError(f"{name}: no saved plan ({path} or its record is missing): {again}")
    try:
        saved = SavedPlan.from_json(record.read_text())
    except (ValueError, TypeError, KeyError) as exc:
        raise CommandError(f"{record}: not a plan record of `ops plan` ({exc}): {again}") from None
    if (saved.stack, saved.env) != (name, target.env):
        raise CommandError(f"{record}: records a plan of {saved.stack}, not {name}: {again}")
    if sha256_file(path) != saved.plan_sha256:
        raise CommandError(f"{path}: not the plan file its record describes (sha256 differs): {again}")
    if not (target.directory / "cdk.tf.json").is_file():
        raise CommandError(f"{name}: not synthesized ({target.directory / 'cdk.tf.json'} is missing)")
    current = source_hash(target.directory)
    if current != saved.source_sha256:
        raise CommandError(
            f"{name}: the saved plan was made from other code: {target.directory / 'cdk.tf.json'} "
            f"changed since it was planned (sha256 {saved.source_sha256[:12]} -> {current[:12]}): {again}"
        )
    return saved


def state_moved(saved: SavedPlan, current: StateInfo | None) -> str | None:
    """Why the state is no longer the one the plan was made against, or None if it still is."""
    before, now = saved.state, current
    if before is None and now is None:
        return None
    if before is None or now is None:
        return f"{saved.against()} when planned, {'no state' if now is None else f'serial {now.serial}'} now"
    if before.lineage != now.lineage:
        return f"the state's lineage changed ({before.lineage} -> {now.lineage})"
    if before.serial != now.serial:
        return f"the state moved from serial {before.serial} to {now.serial} since the plan"
    return None


@dataclass(frozen=True)
class PlanOptions:
    plans: Path
    root: Path
    lock_timeout: str = "0s"
    reconfigure: bool = False


def init_args(root: Path, target: Target, *extra: str) -> list[str]:
    """``terraform init`` arguments for a stack; installs its committed provider lock file first,
    which Terraform then may not change (a provider outside the lock fails instead)."""
    locked = provider_locks.install(root, target)
    return ["init", "-input=false", "-no-color", *(["-lockfile=readonly"] if locked else []), *extra]


def plan_stack(console: Console, target: Target, options: PlanOptions) -> StackPlan:
    name, env = target.name, target.env
    start = time.monotonic()
    if not (target.directory / "cdk.tf.json").is_file():
        console.error(f"{name} | not synthesized: {target.directory / 'cdk.tf.json'} is missing")
        return StackPlan(name, env, False, None, "synth", 0.0)
    tf = terraform_binary()
    tf_env = automation_env()
    plans = options.plans
    plans.mkdir(parents=True, exist_ok=True)
    path = planfile(plans, name).resolve()
    for stale in (path, record_file(plans, name), text_file(plans, name)):
        stale.unlink(missing_ok=True)

    def step(cmd: list[str], what: str, **kwargs: Any) -> Any:
        return console.run(
            cmd, label=name, env_name=env, step=what, cwd=target.directory, env=tf_env, **kwargs
        )

    def failed(what: str) -> StackPlan:
        return StackPlan(name, env, False, None, what, time.monotonic() - start)

    # -reconfigure: after a change of lock settings only (same bucket and key), see the runbook.
    init_cmd = [tf, *init_args(options.root, target, *(["-reconfigure"] if options.reconfigure else []))]
    init = step(init_cmd, "terraform init", show_stdout=False, show_stderr=False)
    if not init.ok:
        # init's chatter is hidden when it works; when it fails, the whole story matters.
        for text in [*init.stdout.splitlines(), *init.stderr.splitlines()]:
            console.error(f"{name} | {text}")
        return failed("terraform init")
    # Read before planning: if the state moves after this, Terraform rejects the plan as stale.
    try:
        state = Terraform(target.directory, env=tf_env, binary=tf).pull()
    except CommandError as exc:
        console.error(f"{name} | {exc}")
        return failed("reading the state")
    plan_cmd = [
        tf,
        "plan",
        "-input=false",
        "-json",
        "-detailed-exitcode",
        f"-lock-timeout={options.lock_timeout}",
        f"-out={path}",
    ]
    plan = step(plan_cmd, "terraform plan", stdout_filter=_shown, success_codes=(0, 2))
    messages = ui_messages(plan.stdout)
    for message in filter(_is_error, messages):
        for text in _diagnostic_lines(message):
            console.error(f"{name} | {text}")
    # -detailed-exitcode: 0 no changes, 2 changes (outputs included), anything else failed.
    if plan.returncode not in (0, 2):
        return failed("terraform plan")
    summary = change_summary(messages)
    if summary is None:
        console.error(f"{name} | terraform plan -json printed no change_summary")
    shown = step([tf, "show", "-no-color", str(path)], "terraform show", show_stdout=False, announce=False)
    if summary is None or not shown.ok:
        return failed("reading the plan")
    saved = _record(target, plans, summary, changes=plan.returncode == 2, state=state, text=shown.stdout)
    result = StackPlan(name, env, True, summary, None, time.monotonic() - start, shown.stdout, saved)
    console.line(f"{name} | Plan: {result.line()} (against {saved.against()})")
    return result


def _record(
    target: Target, plans: Path, summary: PlanSummary, *, changes: bool, state: StateInfo | None, text: str
) -> SavedPlan:
    """Write the plan's record and its text next to it."""
    name = target.name
    text_file(plans, name).write_text(text + "\n")
    saved = SavedPlan(
        stack=name,
        env=target.env,
        line=summary.line(),
        changes=changes,
        source_sha256=source_hash(target.directory),
        plan_sha256=sha256_file(planfile(plans, name)),
        state=state,
        planned_at=time.time(),
    )
    record_file(plans, name).write_text(saved.to_json())
    return saved


def table(results: Sequence[StackPlan]) -> str:
    width = max((len(r.stack) for r in results), default=5)
    return "\n".join(f"  {r.stack.ljust(width)}  {r.line()}  ({r.elapsed:.1f} s)" for r in results)


def markdown(env: str, results: Iterable[StackPlan]) -> str:
    """The PR comment's section for one environment."""
    results = list(results)
    lines = [f"#### Environment `{env}`", ""]
    lines += [
        "| stack | add | change | destroy | result | planned against |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in results:
        if r.ok and r.summary is not None:
            s = r.summary
            lines.append(f"| `{r.stack}` | {s.add} | {s.change} | {s.destroy} | {r.line()} | {r.against} |")
        else:
            lines.append(f"| `{r.stack}` | | | | :x: failed at {r.failed_step} (see the job log) | |")
    for r in results:
        text = r.text.strip()
        if not text:
            continue
        if len(text) > MAX_PLAN_TEXT:
            text = text[:MAX_PLAN_TEXT] + "\n... (truncated: the full plan is in the job log)"
        lines += [
            "",
            f"<details><summary><code>{r.stack}</code>: {r.line()}</summary>",
            "",
            "```text",
            text.replace("```", "'''"),
            "```",
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="synthesize ENV, then terraform init + plan per stack, one summary line each",
        description=(__doc__ or "").split("\n\n")[0],
    )
    synth.add_env_option(parser)
    synth.add_stack_option(parser)
    parser.add_argument(
        "--lock-timeout", default="0s", help="wait this long for a held state lock (e.g. 10m)"
    )
    parser.add_argument(
        "--reconfigure", action="store_true", help="terraform init -reconfigure (lock settings changed)"
    )
    parser.add_argument(
        "--markdown", type=Path, metavar="FILE", help="also write a Markdown summary (PR comment)"
    )
    parser.add_argument("--no-synth", action="store_true", help="plan what is already in cdktf.out")
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when no stack failed and some stack has changes (drift detection)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    console = Console()
    env: str = args.env
    if not naming.ENV_NAME_RE.match(env):
        raise UsageError(f"bad environment name {env!r}: expected lower-case letters and digits, e.g. dev")
    selected = synth.kinds(args.stack)
    out = synth.outdir(args.root)
    envs = load(args.root, [env], "--env")
    if (refused := synth.refuse_placeholders(envs)) is not None:
        return refused
    synth.warn_advisories(envs)
    if not args.no_synth:
        synth.synthesize(envs, selected, out, console)
    options = PlanOptions(plan_dir(args.root), args.root, args.lock_timeout, args.reconfigure)
    results = [plan_stack(console, Target(kind, env, out), options) for kind in selected]
    console.line(f"\nplan summary ({env}):\n{table(results)}")
    text = markdown(env, results)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    # In CI the job summary is where a reviewer reads the plan before approving its apply.
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as fh:
            fh.write(text)
    if not all(r.ok for r in results):
        return 1
    changed = any(r.saved is not None and r.saved.changes for r in results)
    return 2 if args.detailed_exitcode and changed else 0
