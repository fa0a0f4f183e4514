"""``ops plan``: synthesize one environment, then ``terraform init`` + ``plan`` in each stack directory.

Each stack gets ``terraform init -input=false`` (the S3 backend is in the synthesized JSON) and
``terraform plan -json -out=plans/<stack>.tfplan``; the summary is Terraform's own
``change_summary`` message. Every stack is planned even when an earlier one fails, so CI shows
the whole picture; the exit code is 1 if any stack failed.

``plans/<stack>.json`` records the summary with a hash of the ``cdk.tf.json`` it was made from:
``ops deploy`` shows it in its confirmation prompt while the code is unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ops import synth
from ops.runner import Console, UsageError, automation_env, terraform_binary
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

    def line(self) -> str:
        if self.ok and self.summary is not None:
            return self.summary.line()
        return f"FAILED at {self.failed_step}"


def source_hash(stack_dir: Path) -> str:
    return hashlib.sha256((stack_dir / "cdk.tf.json").read_bytes()).hexdigest()


@dataclass(frozen=True)
class PlanOptions:
    plans: Path
    lock_timeout: str = "0s"
    reconfigure: bool = False
    want_text: bool = False


def plan_stack(console: Console, target: Target, options: PlanOptions) -> StackPlan:
    name, env = target.name, target.env
    start = time.monotonic()
    if not (target.directory / "cdk.tf.json").is_file():
        console.error(f"{name} | not synthesized: {target.directory / 'cdk.tf.json'} is missing")
        return StackPlan(name, env, False, None, "synth", 0.0)
    tf = terraform_binary()
    tf_env = automation_env()
    options.plans.mkdir(parents=True, exist_ok=True)
    planfile = (options.plans / f"{name}.tfplan").resolve()
    planfile.unlink(missing_ok=True)
    (options.plans / f"{name}.json").unlink(missing_ok=True)

    def step(cmd: list[str], what: str, **kwargs: Any) -> Any:
        return console.run(
            cmd, label=name, env_name=env, step=what, cwd=target.directory, env=tf_env, **kwargs
        )

    def failed(what: str) -> StackPlan:
        return StackPlan(name, env, False, None, what, time.monotonic() - start)

    # -reconfigure: after a change of lock settings only (same bucket and key), see the runbook.
    init_cmd = [tf, "init", "-input=false", "-no-color", *(["-reconfigure"] if options.reconfigure else [])]
    init = step(init_cmd, "terraform init", show_stdout=False, show_stderr=False)
    if not init.ok:
        # init's chatter is hidden when it works; when it fails, the whole story matters.
        for text in [*init.stdout.splitlines(), *init.stderr.splitlines()]:
            console.error(f"{name} | {text}")
        return failed("terraform init")
    plan_cmd = [
        tf,
        "plan",
        "-input=false",
        "-json",
        f"-lock-timeout={options.lock_timeout}",
        f"-out={planfile}",
    ]
    plan = step(plan_cmd, "terraform plan", stdout_filter=_shown)
    messages = ui_messages(plan.stdout)
    for message in filter(_is_error, messages):
        for text in _diagnostic_lines(message):
            console.error(f"{name} | {text}")
    if not plan.ok:
        return failed("terraform plan")
    summary = change_summary(messages)
    if summary is None:
        console.error(f"{name} | terraform plan -json printed no change_summary")
        return failed("reading the plan")
    text = ""
    if options.want_text:
        shown = step(
            [tf, "show", "-no-color", str(planfile)], "terraform show", show_stdout=False, announce=False
        )
        text = shown.stdout if shown.ok else shown.stderr
    record = {
        "stack": name,
        "env": env,
        "summary": asdict(summary),
        "line": summary.line(),
        "source_sha256": source_hash(target.directory),
        "planned_at": time.time(),
    }
    (options.plans / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    result = StackPlan(name, env, True, summary, None, time.monotonic() - start, text)
    console.line(f"{name} | Plan: {result.line()}")
    return result


def recorded_plan(plans: Path, target: Target) -> dict[str, Any] | None:
    """The summary ``ops plan`` recorded for this stack, if it was made from the current JSON."""
    path = plans / f"{target.name}.json"
    try:
        record: dict[str, Any] = json.loads(path.read_text())
        current = source_hash(target.directory)
    except (OSError, ValueError):
        return None
    return record if record.get("source_sha256") == current else None


def table(results: Sequence[StackPlan]) -> str:
    width = max((len(r.stack) for r in results), default=5)
    return "\n".join(f"  {r.stack.ljust(width)}  {r.line()}  ({r.elapsed:.1f} s)" for r in results)


def markdown(env: str, results: Iterable[StackPlan]) -> str:
    """The PR comment's section for one environment."""
    results = list(results)
    lines = [f"#### Environment `{env}`", ""]
    lines += ["| stack | add | change | destroy | result |", "|---|---:|---:|---:|---|"]
    for r in results:
        if r.ok and r.summary is not None:
            s = r.summary
            lines.append(f"| `{r.stack}` | {s.add} | {s.change} | {s.destroy} | {r.line()} |")
        else:
            lines.append(f"| `{r.stack}` | | | | :x: failed at {r.failed_step} (see the job log) |")
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
    if not args.no_synth:
        synth.synthesize(envs, selected, out, console)
    options = PlanOptions(plan_dir(args.root), args.lock_timeout, args.reconfigure, args.markdown is not None)
    results = [plan_stack(console, Target(kind, env, out), options) for kind in selected]
    console.line(f"\nplan summary ({env}):\n{table(results)}")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(env, results))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as fh:
            fh.write(markdown(env, [replace(r, text="") for r in results]))
    return 0 if all(r.ok for r in results) else 1
