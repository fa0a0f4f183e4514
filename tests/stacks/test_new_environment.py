"""The "add an environment" runbook, followed in a temporary copy of the repository's two
configuration directories: a fifth environment ``qa`` made from dev's two files needs no code or
test change, and passes every per-environment check the shipped environments pass."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from platform_config.loader import BACKEND_DIR, TFVARS_DIR, Environment, load
from tests.conftest import ROOT, Check, Synthesized, shipped_env_names
from tests.stacks import test_bootstrap_stack, test_databricks_stack, test_mlflow_stack

CHECKS: tuple[Check, ...] = (
    *test_bootstrap_stack.CHECKS,
    *test_mlflow_stack.CHECKS,
    *test_databricks_stack.CHECKS,
)


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) >= 1, old
    return text.replace(old, new)


def add_qa(root: Path) -> None:
    """What the runbook says: copy dev's two files, then give the copy its own names and CIDRs,
    phase-1 local state (its bucket does not exist yet) and its own Databricks target."""
    tfvars = (root / TFVARS_DIR / "dev.tfvars").read_text()
    tfvars = replace_once(tfvars, 'environment   = "dev"', 'environment   = "qa"')
    tfvars = replace_once(tfvars, 'bootstrap_state = "s3"', 'bootstrap_state = "local"')
    tfvars = replace_once(tfvars, "10.10.", "10.50.")
    tfvars = replace_once(tfvars, '"ml-dev"', '"ml-qa"')
    tfvars = replace_once(tfvars, 'target   = "test"', 'target   = "qa"')
    (root / TFVARS_DIR / "qa.tfvars").write_text(tfvars)
    backend = (root / BACKEND_DIR / "dev.config").read_text()
    backend = replace_once(backend, "mlopspltf-dev-", "mlopspltf-qa-")
    (root / BACKEND_DIR / "qa.config").write_text(backend)


@pytest.fixture(scope="module")
def qa(
    tmp_path_factory: pytest.TempPathFactory,
    synth_with: Callable[[list[Environment]], Synthesized],
) -> tuple[Synthesized, Environment]:
    root = tmp_path_factory.mktemp("repo")
    for directory in (TFVARS_DIR, BACKEND_DIR):
        shutil.copytree(ROOT / directory, root / directory)
    add_qa(root)
    envs = load(root)
    assert [e.name for e in envs] == sorted([*shipped_env_names(), "qa"])
    [env] = [e for e in envs if e.name == "qa"]
    return synth_with([env]), env


def test_qa_synthesizes_every_stack_kind(qa: tuple[Synthesized, Environment]) -> None:
    out, env = qa
    assert out.stack_names() == ["bootstrap-qa", "databricks-qa", "mlflow-qa"]
    assert out.stack("bootstrap-qa")["terraform"]["backend"] == {
        "local": {"path": "../../../local_state/bootstrap-qa.tfstate"}
    }
    for kind in ("mlflow", "databricks"):
        s3 = out.stack(f"{kind}-qa")["terraform"]["backend"]["s3"]
        assert s3["bucket"] == env.names.bootstrap.state_bucket == "mlopspltf-qa-s3-tf-backend"
        # Deployed after the stack that creates the bucket its state lives in.
        assert out.manifest["stacks"][f"{kind}-qa"]["dependencies"] == ["bootstrap-qa"]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: f"{c.__module__.rsplit('.', 1)[-1]}.{c.__name__}")
def test_qa_passes_every_per_environment_check(qa: tuple[Synthesized, Environment], check: Check) -> None:
    out, env = qa
    check(out, env)
