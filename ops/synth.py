"""``ops synth``: the environments' files -> ``cdktf.out``, in this process.

Also what the other commands share about stacks: the ``--env``/``--stack`` options, the selected
stacks (``Target``), and ``synthesize``, the CLI's one way to synthesize (``stacks.app``'s
function, called in-process). A configuration problem raises ``ConfigError`` before anything is
written, so the previous ``cdktf.out`` stays as it was.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ops.runner import Console
from platform_config import advisories, naming, placeholders
from platform_config.loader import Environment, load


@dataclass(frozen=True)
class Target:
    """One synthesized stack that a command works on."""

    kind: str
    env: str
    outdir: Path

    @property
    def name(self) -> str:
        return naming.stack_id(self.kind, self.env)

    @property
    def directory(self) -> Path:
        return self.outdir / "stacks" / self.name


def add_stack_option(
    parser: argparse.ArgumentParser, *, required: bool = False, many: bool = True, default: str = "all"
) -> None:
    if many:
        parser.add_argument(
            "--stack",
            nargs="+",
            action="extend",
            choices=naming.STACK_KINDS,
            metavar="KIND",
            help=f"stack kinds ({', '.join(naming.STACK_KINDS)}; default: {default})",
        )
    else:
        parser.add_argument("--stack", required=required, choices=naming.STACK_KINDS, metavar="KIND")


def add_env_option(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    if many:
        parser.add_argument(
            "--env", nargs="+", action="extend", metavar="ENV", help="environments (default: all)"
        )
    else:
        parser.add_argument("--env", required=True, metavar="ENV", help="environment, e.g. dev")


def kinds(selected: Sequence[str] | None) -> tuple[str, ...]:
    """The selected kinds in deployment order; none selected means every kind."""
    return tuple(k for k in naming.STACK_KINDS if not selected or k in selected)


def outdir(root: Path) -> Path:
    return root / "cdktf.out"


def synthesize(
    envs: Sequence[Environment],
    selected_kinds: tuple[str, ...],
    out: Path,
    console: Console | None = None,
    pause_gc: bool = True,
) -> Path:
    """``stacks.app.synthesize`` with a progress line; only the selected kinds' providers load."""
    from stacks.app import synthesize as synthesize_app  # late: a config error never pays for jsii

    names = ", ".join(e.name for e in envs)
    if console is not None:
        console.progress("synth", names, f"synthesize {', '.join(selected_kinds)} ...")
    start = time.monotonic()
    result = synthesize_app(envs, selected_kinds, out, pause_gc)
    if console is not None:
        console.progress("synth", names, f"done in {time.monotonic() - start:.1f} s")
    return result


def placeholder_findings(envs: Sequence[Environment]) -> list[placeholders.Finding]:
    return [finding for env in envs for finding in placeholders.find(env)]


def warn_placeholders(envs: Sequence[Environment], every: bool = False) -> None:
    """Synthesis goes on (the shipped files hold placeholders): one line per file with a count, or
    (``every``) each placeholder."""
    findings = placeholder_findings(envs)
    lines = [str(f) for f in findings] if every else placeholders.summary(findings)
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)
    if findings and not every:
        print(
            "warning: list them with `python -m ops synth --warnings` (make synth WARNINGS=1)",
            file=sys.stderr,
        )


def warn_advisories(envs: Sequence[Environment]) -> None:
    """Settings that load but need attention soon (``platform_config.advisories``): one line each."""
    for line in advisories.lines(envs):
        print(f"warning: {line}", file=sys.stderr)


def refuse_placeholders(envs: Sequence[Environment]) -> int | None:
    """Exit code 2 with every placeholder listed, or None when ``envs`` hold none.

    Called by ``plan`` and ``deploy`` before Terraform runs: an example host or cluster id fails
    late or re-points a job, an example CIDR opens a load balancer to someone else's network.
    """
    findings = placeholder_findings(envs)
    for finding in findings:
        print(f"error: {finding}", file=sys.stderr)
    if not findings:
        return None
    docs = ", ".join(sorted({placeholders.doc_for(f.key) for f in findings}))
    print(
        f"{len(findings)} documentation placeholder(s) left; replace them with real values "
        f"(what to supply: {docs}); nothing was done.",
        file=sys.stderr,
    )
    return 2


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="synthesize stacks to cdktf.out/",
        description="Synthesize the selected stacks (default: every kind of every environment).",
    )
    add_env_option(parser, many=True)
    add_stack_option(parser)
    parser.add_argument("--outdir", type=Path, help="output directory (default: cdktf.out)")
    parser.add_argument("--quiet", action="store_true", help="no summary table")
    parser.add_argument(
        "--warnings", action="store_true", help="name every placeholder (default: one line per file)"
    )
    parser.add_argument(
        "--gc-running",
        action="store_true",
        help="import provider packages with the garbage collector running (`ops bench` measures what pausing it saves)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    envs = load(args.root, args.env, "--env")
    warn_placeholders(envs, every=args.warnings)
    warn_advisories(envs)
    out = synthesize(envs, kinds(args.stack), args.outdir or outdir(args.root), pause_gc=not args.gc_running)
    if not args.quiet:
        from stacks.app import summary

        print(summary(out))
    return 0
