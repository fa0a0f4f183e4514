"""Benchmark: wall time and peak memory of a full synthesis against a bare provider import.

Each measurement runs in a fresh process (the costs are process start-up costs), a few times,
and reports the median. Peak memory is the largest sum of RSS over the process and all its
descendants (the jsii node runtime holds about half of it), sampled every 20 ms.

    .venv/bin/python scripts/bench.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BASELINE = """
import cdktf
import cdktf_cdktf_provider_aws
import cdktf_cdktf_provider_databricks
import cdktf_cdktf_provider_random
"""

# The same imports the way main.py does them (stacks.app.gc_paused), for a like-for-like ratio.
BASELINE_GC_PAUSED = f"""
import gc
gc.disable()
{BASELINE}
gc.freeze()
gc.enable()
"""


@dataclass(frozen=True)
class Sample:
    seconds: float
    peak_mib: float


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces; fields after the closing parenthesis are fixed.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return out


def _tree_rss_kib(root: int) -> int:
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        todo.extend(_children(pid))
    return total


def measure(cmd: list[str], env: dict[str, str], cwd: Path) -> Sample:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kib(proc.pid))
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        sys.exit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return Sample(elapsed, peak / 1024)


def median(samples: list[Sample]) -> Sample:
    return Sample(
        statistics.median(s.seconds for s in samples), statistics.median(s.peak_mib for s in samples)
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    env = dict(os.environ, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20", MLOPS_QUIET="1")
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "baseline: import cdktf + aws, databricks, random providers": (
                [python, "-c", BASELINE],
                env,
            ),
            "baseline, GC paused during the imports": (
                [python, "-c", BASELINE_GC_PAUSED],
                env,
            ),
            "full synth (9 stacks), GC paused during provider imports": (
                [python, str(ROOT / "main.py")],
                dict(env, CDKTF_OUTDIR=f"{tmp}/a"),
            ),
            "full synth (9 stacks), GC running (MLOPS_GC_PAUSE=0)": (
                [python, str(ROOT / "main.py")],
                dict(env, CDKTF_OUTDIR=f"{tmp}/b", MLOPS_GC_PAUSE="0"),
            ),
        }
        samples: dict[str, list[Sample]] = {name: [] for name in cases}
        for round_ in range(args.runs):
            for name, (cmd, case_env) in cases.items():
                sample = measure(cmd, case_env, ROOT)
                print(
                    f"  run {round_ + 1}/{args.runs}  {sample.seconds:6.1f} s  {sample.peak_mib:7.0f} MiB  {name}"
                )
                samples[name].append(sample)
    results = {name: median(runs) for name, runs in samples.items()}

    base = results[next(iter(cases))]
    print(f"\nmedian of {args.runs} runs (fresh process each; peak = RSS of python + node runtime)")
    print(f"{'case':<62} {'wall s':>7} {'peak MiB':>9} {'time x':>7} {'mem x':>6}")
    for name, s in results.items():
        print(
            f"{name:<62} {s.seconds:7.1f} {s.peak_mib:9.0f} "
            f"{s.seconds / base.seconds:7.2f} {s.peak_mib / base.peak_mib:6.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
