"""``make bench-selection``: what synthesizing one stack kind costs, against all kinds at once.

Each case runs ``python main.py`` with ``MLOPS_STACKS=<kind>`` (every environment) in a fresh
process, ``--runs`` times, and reports the median wall time and two memory figures:

- peak tree RSS: the largest sum of RSS over the process and its descendants (python plus the
  jsii node runtime), sampled every 20 ms;
- peak process RSS: ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a wrapper process that only runs
  the case, i.e. the largest single process (python or node) of that run.

Usage: ``python scripts/bench_selection.py [--runs 3] [--kinds bootstrap,mlflow,databricks]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from platform_config import naming
from scripts.stack_runner import ROOT

# A fresh interpreter whose only child is the case: its RUSAGE_CHILDREN covers that run alone.
_WRAPPER = """
import json, resource, subprocess, sys
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(json.dumps({"rc": rc, "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


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


def tree_rss_kib(root: int) -> int:
    total, todo, seen = 0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
        todo += _children(pid)
    return total


def measure(kinds: str, outdir: Path) -> Sample:
    env = dict(
        os.environ,
        MLOPS_STACKS=kinds,
        MLOPS_ENVS="",
        MLOPS_QUIET="1",
        CDKTF_OUTDIR=str(outdir),
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
    )
    cmd = [sys.executable, "-c", _WRAPPER, sys.executable, str(ROOT / "main.py")]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss_kib(proc.pid))
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    out, err = proc.communicate()
    try:
        report = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        report = {"rc": proc.returncode, "maxrss_kib": 0}
    if proc.returncode != 0 or report["rc"] != 0:
        raise RuntimeError(f"MLOPS_STACKS={kinds}: synthesis failed\n{err.decode()[-2000:]}")
    return Sample(elapsed, peak / 1024, int(report["maxrss_kib"]) / 1024)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kinds", default=",".join(naming.STACK_KINDS))
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    cases = {f"{k} only": k for k in kinds}
    cases["all kinds"] = ",".join(naming.STACK_KINDS)
    samples: dict[str, list[Sample]] = {name: [] for name in cases}
    with tempfile.TemporaryDirectory(prefix="bench-selection-") as tmp:
        for run in range(args.runs):
            # Interleaved, so a slow phase of the machine hits every case alike.
            for name, value in cases.items():
                try:
                    sample = measure(value, Path(tmp) / f"out-{run}-{value.replace(',', '-')}")
                except RuntimeError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 1
                samples[name].append(sample)
                print(
                    f"  run {run + 1}/{args.runs}  {name:<18} {sample.seconds:6.1f} s"
                    f"  {sample.tree_mib:6.0f} MiB tree  {sample.process_mib:6.0f} MiB largest process",
                    flush=True,
                )
    print(f"\nmedian of {args.runs} runs, each in a fresh process, every environment synthesized")
    print(
        "| MLOPS_STACKS | wall time, median (s) | fastest run (s)"
        " | peak RSS, python + node (MiB) | peak RSS, largest process (MiB) |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, runs in samples.items():
        print(
            f"| {cases[name]} | {statistics.median(s.seconds for s in runs):.1f}"
            f" | {min(s.seconds for s in runs):.1f}"
            f" | {statistics.median(s.tree_mib for s in runs):.0f}"
            f" | {statistics.median(s.process_mib for s in runs):.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
