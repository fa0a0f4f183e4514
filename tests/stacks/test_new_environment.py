"""A new environment, written by ``ops env add`` (its files step) in a temporary copy of the
repository's two configuration directories, needs no code or test change and passes every
per-environment check the shipped environments pass. Its name is generated, its source is each
shipped environment in turn (the production one included)."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest

from ops.env import files
from platform_config.loader import BACKEND_DIR, TFVARS_DIR, Environment, load
from tests.conftest import ROOT, Check, Synthesized, scratch_env_name, shipped_env_names
from tests.stacks import test_bootstrap_stack, test_databricks_stack, test_mlflow_stack

CHECKS: tuple[Check, ...] = (
    *test_bootstrap_stack.CHECKS,
    *test_mlflow_stack.CHECKS,
    *test_databricks_stack.CHECKS,
)


@pytest.fixture(scope="module", params=shipped_env_names())
def added(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    synth_with: Callable[[list[Environment]], Synthesized],
) -> tuple[Synthesized, Environment]:
    root = tmp_path_factory.mktemp("repo")
    for directory in (TFVARS_DIR, BACKEND_DIR):
        shutil.copytree(ROOT / directory, root / directory)
    new = scratch_env_name()
    files.add(root, new, request.param)
    envs = load(root)
    assert [e.name for e in envs] == sorted([*shipped_env_names(), new])
    [env] = [e for e in envs if e.name == new]
    return synth_with([env]), env


def test_a_new_environment_synthesizes_every_stack_kind(added: tuple[Synthesized, Environment]) -> None:
    out, env = added
    stacks = [f"{kind}-{env.name}" for kind in ("bootstrap", "databricks", "mlflow")]
    assert out.stack_names() == stacks
    assert out.stack(f"bootstrap-{env.name}")["terraform"]["backend"] == {
        "local": {"path": f"../../../local_state/bootstrap-{env.name}.tfstate"}
    }
    for kind in ("mlflow", "databricks"):
        s3 = out.stack(f"{kind}-{env.name}")["terraform"]["backend"]["s3"]
        assert s3["bucket"] == env.names.bootstrap.state_bucket == f"mlopspltf-{env.name}-s3-tf-backend"
        # Deployed after the stack that creates the bucket its state lives in.
        assert out.manifest["stacks"][f"{kind}-{env.name}"]["dependencies"] == [f"bootstrap-{env.name}"]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: f"{c.__module__.rsplit('.', 1)[-1]}.{c.__name__}")
def test_a_new_environment_passes_every_per_environment_check(
    added: tuple[Synthesized, Environment], check: Check
) -> None:
    out, env = added
    check(out, env)
