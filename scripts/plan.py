"""``make plan``: synthesize one environment, then ``terraform init`` + ``plan`` in each stack directory.

Usage: ``python scripts/plan.py --env dev [--stack mlflow,databricks] [--markdown FILE]``

Each stack gets ``terraform init -input=false`` (the S3 backend is in the synthesized JSON, so no
``-backend-config``) and ``terraform plan -input=false -out=plans/<stack>.tfplan``; the saved plan is
read back with ``terraform show -json`` and summarized in one line (to add / change / destroy).
Every stack is planned even when an earlier one fails, so CI shows the whole picture; the exit
code is 1 if any stack failed, 2 on a usage error.

``plans/<stack>.json`` records the summary with a hash of the ``cdk.tf.json`` it was made from:
``make deploy`` shows it in its confirmation prompt while the code is unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.stack_runner import (
    DEFAULT_OUTDIR,
    ROOT,
    Console,
    Target,
    UsageError,
    check_env_name,
    parse_kinds,
    synthesize,
    targets,
    terraform_binary,
)

DEFAULT_PLAN_DIR = ROOT / "plans"
# One PR comment holds both environments' plans; GitHub refuses comments over 65,536 characters.
MAX_PLAN_TEXT = 25_000


@dataclass(frozen=True)
class PlanSummary:
    """Counts as Terraform's own ``Plan:`` line has them (a replacement is one add and one destroy)."""

    add: int = 0
    change: int = 0
    destroy: int = 0
    imports: int = 0
    moves: int = 0
    forget: int = 0
    outputs: int = 0

    @property
    def has_changes(self) -> bool:
        return any(asdict(self).values())

    def line(self) -> str:
        if not self.has_changes:
            return "no changes"
        text = f"{self.add} to add, {self.change} to change, {self.destroy} to destroy"
        extras = [(self.imports, "to import"), (self.moves, "to move"), (self.forget, "to forget")]
        if not (self.add or self.change or self.destroy):
            extras.append((self.outputs, "output(s) to change"))
        return text + "".join(f", {n} {what}" for n, what in extras if n)


def summarize(plan: Mapping[str, Any]) -> PlanSummary:
    """Summary of a ``terraform show -json <planfile>`` document."""
    counts = {"add": 0, "change": 0, "destroy": 0, "imports": 0, "moves": 0, "forget": 0}
    for rc in plan.get("resource_changes") or []:
        if rc.get("mode", "managed") != "managed":
            continue
        change = rc.get("change") or {}
        actions = list(change.get("actions") or [])
        if change.get("importing") is not None:
            counts["imports"] += 1
        if rc.get("previous_address") and rc.get("previous_address") != rc.get("address"):
            counts["moves"] += 1
        if actions == ["create"]:
            counts["add"] += 1
        elif actions == ["update"]:
            counts["change"] += 1
        elif actions == ["delete"]:
            counts["destroy"] += 1
        elif sorted(actions) == ["create", "delete"]:
            counts["add"] += 1
            counts["destroy"] += 1
        elif actions == ["forget"]:
            counts["forget"] += 1
    outputs = sum(
        1
        for oc in (plan.get("output_changes") or {}).values()
        if (oc.get("actions") or ["no-op"]) != ["no-op"]
    )
    return PlanSummary(outputs=outputs, **counts)


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


def terraform_env() -> dict[str, str]:
    env = dict(os.environ)
    # Automation mode: no "run terraform apply" hints, no prompts for missing values.
    env.setdefault("TF_IN_AUTOMATION", "1")
    env.setdefault("TF_INPUT", "0")
    return env


def plan_stack(
    console: Console,
    target: Target,
    plan_dir: Path,
    *,
    lock_timeout: str = "0s",
    reconfigure: bool = False,
    show_plan: bool = True,
    want_text: bool = False,
    color: bool = False,
) -> StackPlan:
    name, env = target.name, target.env
    start = time.monotonic()
    if not (target.directory / "cdk.tf.json").is_file():
        console.line(f"{name} | not synthesized: {target.directory / 'cdk.tf.json'} is missing", console.err)
        return StackPlan(name, env, False, None, "synth", 0.0)
    tf = terraform_binary()
    tf_env = terraform_env()
    color_flag = [] if color else ["-no-color"]
    plan_dir.mkdir(parents=True, exist_ok=True)
    planfile = (plan_dir / f"{name}.tfplan").resolve()
    planfile.unlink(missing_ok=True)
    (plan_dir / f"{name}.json").unlink(missing_ok=True)

    def failed(step: str) -> StackPlan:
        return StackPlan(name, env, False, None, step, time.monotonic() - start)

    init = console.run(
        # -reconfigure: after a change of lock settings only (same bucket and key), see the README.
        [tf, "init", "-input=false", *(["-reconfigure"] if reconfigure else []), *color_flag],
        label=name,
        env_name=env,
        step="terraform init",
        cwd=target.directory,
        env=tf_env,
        show_stdout=False,
        show_stderr=False,
    )
    if not init.ok:
        # init's chatter is hidden when it works; when it fails, the whole story matters.
        for text in [*init.stdout.splitlines(), *init.stderr.splitlines()]:
            console.line(f"{name} | {text}", console.err)
        return failed("terraform init")
    plan = console.run(
        [tf, "plan", "-input=false", f"-lock-timeout={lock_timeout}", f"-out={planfile}", *color_flag],
        label=name,
        env_name=env,
        step="terraform plan",
        cwd=target.directory,
        env=tf_env,
        show_stdout=show_plan,
    )
    if not plan.ok:
        return failed("terraform plan")
    show = console.run(
        [tf, "show", "-json", str(planfile)],
        label=name,
        env_name=env,
        step="terraform show -json",
        cwd=target.directory,
        env=tf_env,
        show_stdout=False,
        announce=False,
    )
    if not show.ok:
        return failed("terraform show")
    try:
        summary = summarize(json.loads(show.stdout))
    except (ValueError, AttributeError, TypeError) as exc:
        console.line(f"{name} | cannot read the plan JSON: {exc}", console.err)
        return failed("reading the plan")
    text = ""
    if want_text:
        shown = console.run(
            [tf, "show", "-no-color", str(planfile)],
            label=name,
            env_name=env,
            step="terraform show",
            cwd=target.directory,
            env=tf_env,
            show_stdout=False,
            announce=False,
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
    (plan_dir / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    result = StackPlan(name, env, True, summary, None, time.monotonic() - start, text)
    console.line(f"{name} | Plan: {result.line()}")
    return result


def recorded_plan(plan_dir: Path, target: Target) -> dict[str, Any] | None:
    """The summary ``make plan`` recorded for this stack, if it was made from the current JSON."""
    path = plan_dir / f"{target.name}.json"
    try:
        record: dict[str, Any] = json.loads(path.read_text())
        current = source_hash(target.directory)
    except (OSError, ValueError):
        return None
    return record if record.get("source_sha256") == current else None


def table(results: Sequence[StackPlan]) -> str:
    width = max((len(r.stack) for r in results), default=5)
    rows = [f"  {r.stack.ljust(width)}  {r.line()}  ({r.elapsed:.1f} s)" for r in results]
    return "\n".join(rows)


def markdown(env: str, results: Iterable[StackPlan], synth_ok: bool = True) -> str:
    """The PR comment's section for one environment."""
    results = list(results)
    lines = [f"#### Environment `{env}`", ""]
    if not synth_ok:
        lines.append("Synthesis failed: see the job log.")
        return "\n".join(lines) + "\n"
    lines += ["| stack | add | change | destroy | result |", "|---|---:|---:|---:|---|"]
    for r in results:
        if r.ok and r.summary is not None:
            s = r.summary
            verdict = "no changes" if not s.has_changes else r.line()
            lines.append(f"| `{r.stack}` | {s.add} | {s.change} | {s.destroy} | {verdict} |")
        else:
            lines.append(f"| `{r.stack}` | | | | :x: failed at {r.failed_step} (see the job log) |")
    for r in results:
        if r.text.strip():
            text = r.text.strip()
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


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="environment, e.g. dev")
    parser.add_argument("--stack", default="", help="stack kinds, comma-separated (default: all)")
    parser.add_argument("--outdir", type=Path, default=DEFAULT_OUTDIR)
    parser.add_argument("--plan-dir", type=Path, default=DEFAULT_PLAN_DIR)
    parser.add_argument("--no-synth", action="store_true", help="plan what is already in --outdir")
    parser.add_argument("--lock-timeout", default="0s", help="wait this long for a held state lock")
    parser.add_argument(
        "--reconfigure", action="store_true", help="terraform init -reconfigure (backend settings changed)"
    )
    parser.add_argument("--quiet", action="store_true", help="only the summary lines, not the plans")
    parser.add_argument("--markdown", type=Path, help="also write a Markdown summary (PR comment)")
    parser.add_argument("--color", action="store_true", help="keep Terraform's colours")
    args = parser.parse_args(argv)
    console = console or Console()
    try:
        env = check_env_name(args.env)
        kinds = parse_kinds(args.stack)
    except UsageError as exc:
        console.line(f"error: {exc}", console.err)
        return 2
    outdir = args.outdir.resolve()
    synth_ok = args.no_synth or synthesize(console, env, kinds, outdir)
    results: list[StackPlan] = []
    if synth_ok:
        for target in targets(env, kinds, outdir):
            results.append(
                plan_stack(
                    console,
                    target,
                    args.plan_dir,
                    lock_timeout=args.lock_timeout,
                    reconfigure=args.reconfigure,
                    show_plan=not args.quiet,
                    want_text=args.markdown is not None,
                    color=args.color,
                )
            )
        console.line(f"\nplan summary ({env}):\n{table(results)}")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(env, results, synth_ok))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as fh:
            fh.write(markdown(env, [replace(r, text="") for r in results], synth_ok))
    return 0 if synth_ok and all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
