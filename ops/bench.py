"""``ops bench``: wall time and peak memory of synthesis, each case in a fresh process.

Default: a full synthesis (GC paused during the provider imports, and running) against a bare
import of cdktf and the providers. ``--selection``: one stack kind alone against all kinds. Each
case runs ``--runs`` times, interleaved so a slow phase of the machine hits every case alike; the
median is reported. Peak tree RSS is the largest sum of RSS over the process and its descendants
(python plus the jsii node runtime, sampled every 20 ms); the largest process is the highest
``VmHWM`` (a process's own peak RSS) among them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ops.runner import ROOT, CommandError, automation_env, execute
from platform_config import naming

SAMPLE_SECONDS = 0.02
BASELINE = """
import cdktf
import cdktf_cdktf_provider_aws
import cdktf_cdktf_provider_databricks
import cdktf_cdktf_provider_random
"""
# The same imports the way stacks.app does them (gc_paused), for a like-for-like ratio.
BASELINE_GC_PAUSED = f"import gc\ngc.disable()\n{BASELINE}\ngc.freeze()\ngc.enable()\n"


@dataclass(frozen=True)
class Sample:
    seconds: float
    tree_mib: float
    process_mib: float


def _children(pid: int) -> list[int]:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    out: list[int] = []
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants that are alive now."""
    seen: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.append(pid)
            todo += _children(pid)
    return seen


def tree_rss_kib(root: int) -> int:
    return sum(_status_kib(pid, "VmRSS") for pid in process_tree(root))


def measure(cmd: list[str]) -> Sample:
    peaks = {"tree": 0, "process": 0}

    def sample(pid: int) -> None:
        tree = process_tree(pid)
        peaks["tree"] = max(peaks["tree"], sum(_status_kib(p, "VmRSS") for p in tree))
        peaks["process"] = max([peaks["process"], *(_status_kib(p, "VmHWM") for p in tree)])

    env = automation_env(JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    result = execute(cmd, cwd=ROOT, env=env, on_tick=sample, tick_seconds=SAMPLE_SECONDS)
    if not result.ok:
        raise CommandError(
            f"benchmark case failed (exit {result.returncode}): {' '.join(cmd)}\n{result.stderr[-2000:]}"
        )
    return Sample(result.elapsed, peaks["tree"] / 1024, peaks["process"] / 1024)


def _synth(outdir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ops", "synth", "--quiet", "--outdir", str(outdir), *extra]


def cases(selection: bool, scratch: Path) -> dict[str, list[str]]:
    if selection:
        out = {f"{kind} only": _synth(scratch / kind, "--stack", kind) for kind in naming.STACK_KINDS}
        out["all kinds"] = _synth(scratch / "all")
        return out
    return {
        "baseline: import cdktf + aws, databricks, random providers": [sys.executable, "-c", BASELINE],
        "baseline, GC paused during the imports": [sys.executable, "-c", BASELINE_GC_PAUSED],
        "full synth, GC paused during provider imports": _synth(scratch / "paused"),
        "full synth, GC running (--gc-running)": _synth(scratch / "running", "--gc-running"),
    }


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("bench", help="synthesis wall time and peak memory", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per case (median reported)")
    parser.add_argument("--selection", action="store_true", help="each stack kind alone against all kinds")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        todo = cases(args.selection, Path(scratch))
        samples: dict[str, list[Sample]] = {name: [] for name in todo}
        for round_ in range(args.runs):
            for name, cmd in todo.items():
                s = measure(cmd)
                samples[name].append(s)
                print(
                    f"  run {round_ + 1}/{args.runs}  {s.seconds:6.1f} s  {s.tree_mib:6.0f} MiB tree"
                    f"  {s.process_mib:6.0f} MiB largest process  {name}",
                    flush=True,
                )
    print(f"\nmedian of {args.runs} runs, each in a fresh process (peak = RSS of python + node runtime)")
    print("| case | wall time (s) | fastest (s) | peak RSS, tree (MiB) | peak RSS, largest process (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for name, runs in samples.items():
        print(
            f"| {name} | {statistics.median(s.seconds for s in runs):.1f} | {min(s.seconds for s in runs):.1f}"
            f" | {statistics.median(s.tree_mib for s in runs):.0f}"
            f" | {statistics.median(s.process_mib for s in runs):.0f} |"
        )
    return 0
