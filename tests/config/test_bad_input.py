"""The process contract of bad input: ``main.py`` as a subprocess against broken environment files.

Each case copies the test-owned environments into a scratch directory, breaks one thing, and runs
main.py there over an existing cdktf.out. It must exit with 2, print exactly one
``error: file: key: problem`` line and no traceback, and leave the old cdktf.out byte-identical.
Which problem each kind of bad input gives is tested in-process (test_loader.py and the block
tests); these few cases cover the ways a run can fail: parsing, the models, the rules, the
selection and the file set.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from platform_config.loader import BACKEND_DIR, TFVARS_DIR
from tests.conftest import ROOT
from tests.fixtures.envs import FIXTURES

DEV_VARS = f"{TFVARS_DIR}/dev.tfvars"
DEV_BACKEND = f"{BACKEND_DIR}/dev.config"
PRD_VARS = f"{TFVARS_DIR}/prd.tfvars"


def replace(path: str, old: str, new: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        file = root / path
        assert old in file.read_text(), f"{old!r} not in the fixture {path}"
        file.write_text(file.read_text().replace(old, new, 1))

    return mutate


def delete(path: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        (root / path).unlink()

    return mutate


def unchanged(root: Path) -> None:
    """No file edit: the case breaks the environment selection instead."""


@dataclass(frozen=True)
class Case:
    id: str
    mutate: Callable[[Path], None]
    file: str
    key: str | None  # a regex; None when the problem is the file itself
    says: str  # a fragment of the problem text
    env: dict[str, str] = field(default_factory=dict)


CASES = [
    Case("syntax-error", replace(DEV_VARS, "is_production = false", "is_production = = false"), DEV_VARS, r"line \d+", "HCL syntax error"),
    Case("unknown-key", replace(DEV_VARS, "bootstrap_state", "colour = 1\nbootstrap_state"), DEV_VARS, "colour", "unknown key"),
    Case("bad-cidr", replace(DEV_VARS, '"10.10.0.0/16"', '"10.10.0.0/33"'), DEV_VARS, r"network\.vpc_cidr", "not a valid CIDR"),
    Case("unknown-environment", unchanged, "$MLOPS_ENVS", None, "unknown environment 'stg' (known: dev, prd)", {"MLOPS_ENVS": "stg"}),
    Case("missing-backend-config", delete(DEV_BACKEND), DEV_VARS, None, f"no matching backend config {DEV_BACKEND}"),
    Case("key-set-twice", replace(DEV_VARS, "  single_nat_gateway    = true", "  single_nat_gateway    = true\n  single_nat_gateway = false"), DEV_VARS, r"network\.single_nat_gateway", "set twice (lines 23 and 24)"),
    Case("top-level-key-set-twice", replace(DEV_VARS, "is_production = false", "is_production = false\nis_production = true"), DEV_VARS, "is_production", "set twice (lines 5 and 6)"),
    Case("brace-never-closed", replace(DEV_VARS, "network = {", "network = { {"), DEV_VARS, "line 17", "'{' at column 11 is never closed"),
    Case("unsupported-engine-version", replace(DEV_VARS, "mlflow = {", 'mlflow = {\n  database = { engine_version = "5.7" }'), DEV_VARS, r"mlflow\.database\.engine_version", "'5.7' is not a supported MySQL version: 8.4 or 8.4.x"),
    Case("overlapping-vpc", replace(DEV_VARS, '"10.10.0.0/16"', '"10.0.0.0/8"'), PRD_VARS, r"network\.vpc_cidr", "10.30.0.0/16 overlaps 10.0.0.0/8 of environment 'dev'"),
]  # fmt: skip


def _tree(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(path.rglob("*"))
    }


@dataclass(frozen=True)
class Run:
    proc: subprocess.CompletedProcess[str]
    before: dict[str, str]
    after: dict[str, str]
    leftovers: list[str]


def _run_case(base: Path, env: dict[str, str], case: Case) -> Run:
    root = base / case.id
    shutil.copytree(FIXTURES / TFVARS_DIR, root / TFVARS_DIR)
    shutil.copytree(FIXTURES / BACKEND_DIR, root / BACKEND_DIR)
    previous = root / "cdktf.out"
    (previous / "stacks" / "bootstrap-dev").mkdir(parents=True)
    (previous / "manifest.json").write_text('{"version": "previous run"}\n')
    (previous / "stacks" / "bootstrap-dev" / "cdk.tf.json").write_text('{"previous": true}\n')
    before = _tree(previous)
    case.mutate(root)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py")],
        cwd=root,
        env={**env, **case.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    leftovers = sorted(p.name for p in root.iterdir() if p.name.startswith(".cdktf.out"))
    return Run(proc, before, _tree(previous), leftovers)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every case's main.py run, a few at a time: each is a fresh Python process."""
    env = {k: v for k, v in os.environ.items() if k not in {"CDKTF_OUTDIR", "MLOPS_ENVS", "MLOPS_STACKS"}}
    env.update(JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20", CHECKPOINT_DISABLE="1")
    base = tmp_path_factory.mktemp("bad-input")
    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(pool.map(lambda c: (c.id, _run_case(base, env, c)), CASES))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_cleanly(runs: dict[str, Run], case: Case) -> None:
    run = runs[case.id]
    proc = run.proc
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    where = re.escape(case.file) + (f": {case.key}: " if case.key is not None else ": ")
    assert re.match(f"error: {where}", errors[0]), errors[0]
    assert case.says in errors[0], errors[0]
    assert run.after == run.before, "the previous cdktf.out was modified"
    assert run.leftovers == []
