"""``ops bench``: wall time and peak memory of synthesis against the project's performance targets.

Cases, each run ``--runs`` times in a fresh process, interleaved so a slow phase of the machine
hits every case alike; the median is reported:

- the naive floor: a bare cdktf app in a scratch directory that imports cdktf and the AWS,
  Databricks and random providers the plain way and synthesizes one S3 bucket;
- the full synthesis (``ops synth``: every kind of every shipped environment), and the same with
  the garbage collector running during the provider imports (what pausing it saves);
- the Databricks stacks alone (``ops synth --stack databricks``, the same synthesize function);
- every kind of ``MANY_ENVS`` environments: the shipped ones plus copies of dev with new names and
  CIDRs, in a scratch copy of the two config directories. The difference to the full synthesis,
  per added environment, is the cost of one more environment;
- with ``--throughput``, at the end: what MLflow's sign-in costs in requests per second, latency and
  server CPU (the rehearsal's throughput step, rehearsal/harness.py ``throughput``), whose table it
  prints and whose exit code it returns;
- with ``--suite``, once after the others: ``make check``, what ``make test`` runs after its
  set-up (ruff, the format check, mypy, both pytest runs), against the median full synthesis.

Memory is sampled every 20 ms over the process and its descendants: the jsii runtime's node
processes (told apart by their command line) and python. "python" and "node" are the peaks each
process reached (``VmHWM``), summed per side; "python + node" is the largest sum of RSS of all of
them seen at one time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ops.env.files import add as add_environment
from ops.runner import ROOT, CommandError, automation_env, execute, outside_make
from platform_config import naming
from platform_config.loader import BACKEND_DIR, TFVARS_DIR

SAMPLE_SECONDS = 0.02
MANY_ENVS = 21
CLONED_ENV = "dev"

FLOOR_APP = """
import sys

import cdktf
import cdktf_cdktf_provider_aws
import cdktf_cdktf_provider_databricks
import cdktf_cdktf_provider_random
from cdktf_cdktf_provider_aws.provider import AwsProvider
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket

app = cdktf.App(outdir=sys.argv[1])
stack = cdktf.TerraformStack(app, "floor")
AwsProvider(stack, "aws", region="us-east-1")
S3Bucket(stack, "bucket", bucket="naive-floor-bucket")
app.synth()
"""

FLOOR = "naive floor: bare cdktf app, 4 packages, one S3 bucket"
FULL = "full synth (every kind, shipped environments)"
GC_RUNNING = "full synth, GC running during the provider imports"
DATABRICKS = "databricks only (--stack databricks)"
MANY = f"full synth, {MANY_ENVS} environments"
SUITE = "make check (make test without its set-up), once"

# The project's performance targets (benchmark figures, not timed tests).
FLOOR_RATIO_TARGET = 0.30
PEAK_TARGET_MIB = 900.0  # 0.9 GB, as python + node MiB over 1000
DATABRICKS_RATIO_TARGET = 0.15
SUITE_RATIO_TARGET = 6.0


@dataclass(frozen=True)
class Case:
    label: str
    cmd: list[str]
    cwd: Path = ROOT
    env: Mapping[str, str] | None = None  # default: this process's, in automation mode


@dataclass(frozen=True)
class Sample:
    seconds: float
    python_mib: float
    node_mib: float
    tree_mib: float


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


def _is_node(pid: int) -> bool:
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return Path(argv0.decode(errors="replace")).name.startswith("node")


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


def measure(case: Case) -> Sample:
    own_peak_kib: dict[int, int] = {}
    node: dict[int, bool] = {}
    tree_peak_kib = 0

    def sample(pid: int) -> None:
        nonlocal tree_peak_kib
        tree = process_tree(pid)
        tree_peak_kib = max(tree_peak_kib, tree_rss_kib(pid))
        for p in tree:
            is_node = _is_node(p)
            if is_node and not node.get(p, False):
                # Sampled between fork and exec, it was still a copy of its Python parent: exec
                # resets the peak (VmHWM), so count it from now on, and as node.
                own_peak_kib.pop(p, None)
            node[p] = is_node or node.get(p, False)
            own_peak_kib[p] = max(own_peak_kib.get(p, 0), _status_kib(p, "VmHWM"))

    env = case.env or automation_env(JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    result = execute(case.cmd, cwd=case.cwd, env=env, on_tick=sample, tick_seconds=SAMPLE_SECONDS)
    if not result.ok:
        raise CommandError(
            f"benchmark case {case.label!r} failed (exit {result.returncode}): {' '.join(case.cmd)}\n"
            f"{(result.stdout + result.stderr)[-3000:]}"
        )
    node_kib = sum(kib for p, kib in own_peak_kib.items() if node[p])
    python_kib = sum(own_peak_kib.values()) - node_kib
    return Sample(result.elapsed, python_kib / 1024, node_kib / 1024, tree_peak_kib / 1024)


def many_environments(root: Path, scratch: Path, count: int) -> list[str]:
    """Copy the config directories of ``root`` to ``scratch``, adding copies of dev (``ops env add``:
    own names, CIDRs and Databricks target) until there are ``count`` environments; returns the
    added names."""
    for directory in (TFVARS_DIR, BACKEND_DIR):
        shutil.copytree(root / directory, scratch / directory)
    shipped = sorted(p.stem for p in (root / TFVARS_DIR).glob("*.tfvars"))
    added = [f"bench{i:02d}" for i in range(1, count - len(shipped) + 1)]
    for name in added:
        add_environment(scratch, name, CLONED_ENV)
    return added


def _synth(outdir: Path, *extra: str, root: Path = ROOT) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ops",
        "--root",
        str(root),
        "synth",
        "--quiet",
        "--outdir",
        str(outdir),
        *extra,
    ]


def cases(scratch: Path, selection: bool) -> list[Case]:
    (scratch / "floor").mkdir()
    (scratch / "floor" / "app.py").write_text(FLOOR_APP)
    many_root = scratch / "many"
    many_environments(ROOT, many_root, MANY_ENVS)
    out = [
        Case(FLOOR, [sys.executable, "app.py", str(scratch / "floor" / "out")], scratch / "floor"),
        Case(FULL, _synth(scratch / "full")),
        Case(GC_RUNNING, _synth(scratch / "gc-running", "--gc-running")),
        Case(DATABRICKS, _synth(scratch / "databricks", "--stack", "databricks")),
        Case(MANY, _synth(scratch / "many-out", root=many_root)),
    ]
    if selection:
        out += [
            Case(f"{kind} only (--stack {kind})", _synth(scratch / kind, "--stack", kind))
            for kind in naming.STACK_KINDS
            if kind != "databricks"
        ]
    return out


def _median(samples: Sequence[Sample], field: str) -> float:
    return float(statistics.median(getattr(s, field) for s in samples))


def targets(
    samples: dict[str, list[Sample]], shipped_envs: int, suite: float | None = None
) -> list[tuple[str, str, str, str]]:
    """(figure, measured, target, met) rows; ``suite``: the seconds ``make check`` took, if timed."""
    full, floor = _median(samples[FULL], "seconds"), _median(samples[FLOOR], "seconds")
    databricks, many = _median(samples[DATABRICKS], "seconds"), _median(samples[MANY], "seconds")
    peak = _median(samples[FULL], "tree_mib")
    python, node = _median(samples[FULL], "python_mib"), _median(samples[FULL], "node_mib")
    per_env = (many - full) / (MANY_ENVS - shipped_envs)

    def met(ok: bool) -> str:
        return "yes" if ok else "NO"

    rows = [
        (
            "full synth / naive floor",
            f"{full / floor:.2f}x ({full:.2f} s / {floor:.2f} s)",
            f"<= {FLOOR_RATIO_TARGET:.2f}x",
            met(full / floor <= FLOOR_RATIO_TARGET),
        ),
        (
            "peak python + node, full synth",
            f"{peak:.0f} MiB (python {python:.0f}, node {node:.0f})",
            f"<= 0.9 GB ({PEAK_TARGET_MIB:.0f} MiB)",
            met(peak <= PEAK_TARGET_MIB),
        ),
        (
            "databricks only / full synth",
            f"{databricks / full:.2f}x ({databricks:.2f} s / {full:.2f} s)",
            f"<= {DATABRICKS_RATIO_TARGET:.2f}x",
            met(databricks / full <= DATABRICKS_RATIO_TARGET),
        ),
        (
            "cost per added environment",
            f"{per_env:.2f} s ({MANY_ENVS} envs {many:.2f} s, {shipped_envs} envs {full:.2f} s)",
            "reported (was 0.24 s before the lazy provider import)",
            "-",
        ),
    ]
    if suite is not None:
        rows.append(
            (
                "make test (without its set-up) / full synth",
                f"{suite / full:.1f}x ({suite:.1f} s / {full:.2f} s)",
                f"<= {SUITE_RATIO_TARGET:.0f}x",
                met(suite / full <= SUITE_RATIO_TARGET),
            )
        )
    return rows


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="synthesis wall time and peak memory against the project's performance targets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per case (median reported; default 3)")
    parser.add_argument("--selection", action="store_true", help="also each of the other stack kinds alone")
    parser.add_argument(
        "--suite", action="store_true", help="also time `make check` (make test without its set-up) once"
    )
    parser.add_argument(
        "--throughput",
        action="store_true",
        help="also what MLflow sign-in costs: the rehearsal's throughput step (python -m rehearsal "
        "--throughput-only) for the first shipped environment, about 4 minutes",
    )
    parser.set_defaults(func=run)


def throughput() -> int:
    """The rehearsal's throughput step for the first shipped environment (its table is printed by
    the rehearsal); its exit code."""
    env = sorted(p.stem for p in (ROOT / TFVARS_DIR).glob("*.tfvars"))[0]
    print(f"\nwhat sign-in costs (rehearsal/run.sh --env {env} --throughput-only)", flush=True)
    done = execute(
        [str(ROOT / "rehearsal" / "run.sh"), "--env", env, "--throughput-only"],
        cwd=ROOT,
        on_stdout=lambda line: print(line, flush=True),
        on_stderr=lambda line: print(line, file=sys.stderr, flush=True),
        timeout=1800,
    )
    return done.returncode


def run(args: argparse.Namespace) -> int:
    shipped_envs = len(list((ROOT / TFVARS_DIR).glob("*.tfvars")))
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        todo = cases(Path(scratch), args.selection)
        samples: dict[str, list[Sample]] = {case.label: [] for case in todo}
        for round_ in range(args.runs):
            for case in todo:
                s = measure(case)
                samples[case.label].append(s)
                print(
                    f"  run {round_ + 1}/{args.runs}  {s.seconds:6.2f} s  python {s.python_mib:5.0f} MiB"
                    f"  node {s.node_mib:5.0f} MiB  python + node {s.tree_mib:5.0f} MiB  {case.label}",
                    flush=True,
                )
    suite = None
    if args.suite:
        # The user's environment as it is: the suite is what a developer runs. Its memory is not a
        # figure: hundreds of short processes.
        suite = measure(
            Case(SUITE, ["make", "--no-print-directory", "check"], env=outside_make(os.environ))
        ).seconds
        print(f"  once       {suite:6.1f} s  {SUITE}", flush=True)
    print(f"\nmedian of {args.runs} runs, each in a fresh process")
    print(
        "| case | wall time (s) | fastest (s) | python peak (MiB) | node peak (MiB) | python + node peak (MiB) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, runs in samples.items():
        print(
            f"| {label} | {_median(runs, 'seconds'):.2f} | {min(s.seconds for s in runs):.2f}"
            f" | {_median(runs, 'python_mib'):.0f} | {_median(runs, 'node_mib'):.0f}"
            f" | {_median(runs, 'tree_mib'):.0f} |"
        )
    print("\ntargets")
    print("| figure | measured | target | met |")
    print("|---|---|---|---|")
    for row in targets(samples, shipped_envs, suite):
        print(f"| {' | '.join(row)} |")
    return throughput() if args.throughput else 0
