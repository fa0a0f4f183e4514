"""``python -m rehearsal [--env E ...] [--patch FILE] [--skip-install] [--keep DIR] [--no-upgrade]``

Synthesizes the ``mlflow`` stack of each environment, takes the boot script from its launch
template, and rehearses it on this machine (see rehearsal/harness.py); then, for each environment,
the upgrade from the release before (rehearsal/upgrade.py) unless ``--no-upgrade``. Exit 0 when
every step passes, 1 when a step fails, 2 on a usage or configuration error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rehearsal import install
from rehearsal.harness import Rehearsal, Report
from rehearsal.target import Target

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-mlflow"  # the ops mlflow commands' too (ops/mlflow/venv.py)
AWS_TOOLS = ROOT / ".venv-rehearsal" / "awscli"
MOTO = ROOT / ".venv" / "bin" / "moto_server"
DEFAULT_ENVS = ("dev", "prd")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rehearsal", description=__doc__.split("\n\n")[1])
    p.add_argument(
        "--env", action="append", help=f"environment to rehearse (default: {', '.join(DEFAULT_ENVS)})"
    )
    p.add_argument(
        "--patch",
        type=Path,
        action="append",
        default=[],
        help="a unified diff applied to each rendered boot script first (repeatable, in order)",
    )
    p.add_argument("--skip-install", action="store_true", help="do not install packages or the venv")
    p.add_argument("--keep", type=Path, help="keep the work directory here (logs, screenshots)")
    p.add_argument("--no-upgrade", action="store_true", help="skip the upgrade rehearsal")
    return p.parse_args(argv)


def synthesize(envs: list[str], outdir: Path) -> None:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from platform_config.errors import ConfigError
    from platform_config.loader import load
    from stacks.app import synthesize as synth

    try:
        loaded = load(ROOT, envs)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    synth(loaded, ("mlflow",), outdir)


def patched(script: str, patch: Path, work: Path) -> str:
    work.mkdir(parents=True, exist_ok=True)
    (work / "user-data.sh").write_text(script)
    done = subprocess.run(
        ["patch", "--no-backup-if-mismatch", "-s", str(work / "user-data.sh"), str(patch.resolve())],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(f"error: {patch}: does not apply: {done.stdout}{done.stderr}", file=sys.stderr)
        raise SystemExit(2)
    return (work / "user-data.sh").read_text()


def table(reports: list[Report]) -> str:
    rows = ["| step | result | time | proves fix | evidence |", "|---|---|---|---|---|"]
    figures: list[str] = []
    for report in reports:
        for s in report.steps:
            evidence = s.evidence.replace("|", "/").replace("\n", " ")[:220]
            rows.append(
                f"| {s.name} | {'PASS' if s.ok else 'FAIL'} | {s.seconds:.1f} s | {s.defect} | {evidence} |"
            )
        figures.extend(f"| {report.env} | {k} | {v} |" for k, v in report.figures.items())
    return "\n".join([*rows, "", "| env | figure | value |", "|---|---|---|", *figures])


def main(argv: list[str]) -> int:
    args = parse(argv)
    envs = args.env or list(DEFAULT_ENVS)
    timings: list[tuple[str, float]] = []
    work = args.keep or Path(tempfile.mkdtemp(prefix="rehearsal-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        start = time.monotonic()
        synthesize(envs, work / "cdktf.out")
        timings.append(("synthesize mlflow stacks", time.monotonic() - start))
        targets = []
        for env in envs:
            target = Target.read(work / "cdktf.out", env)
            for n, patch in enumerate(args.patch):
                script = patched(target.script, patch, work / f"patch-{env}-{n}")
                target = Target.read(work / "cdktf.out", env, script)
            targets.append(target)
        start = time.monotonic()
        if not args.skip_install:
            install.apt_packages()
            wanted = {install.Requirements.of(t.script) for t in targets}
            if len(wanted) != 1:
                print("error: the environments install different packages; rehearse them one at a time")
                return 2
            install.mlflow_venv(VENV, wanted.pop())
        path_prefix = install.aws_cli(AWS_TOOLS)
        timings.append(("install (skips what is present)", time.monotonic() - start))
        reports = [Rehearsal(t, work / t.env, VENV, MOTO, path_prefix).run() for t in targets]
        if not args.no_upgrade:
            from rehearsal.upgrade import UpgradeRehearsal

            reports += [
                UpgradeRehearsal(t, work / f"upgrade-{t.env}", VENV, MOTO, path_prefix).run() for t in targets
            ]
        for name, seconds in timings:
            print(f"[rehearsal] {name}: {seconds:.1f} s")
        print(table(reports))
        print(f"[rehearsal] logs and screenshots under {work}")
        return 0 if all(s.ok for r in reports for s in r.steps) else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
