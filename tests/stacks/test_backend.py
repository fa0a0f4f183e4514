"""Every synthesized stack's backend block is exactly its environment's config file plus its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hcl2
import pytest

from platform_config import naming
from platform_config.loader import Environment
from tests.conftest import ROOT, Synthesized, shipped_env_names
from tests.fixtures.envs import ConfigFiles

_HCL = hcl2.SerializationOptions(with_comments=False, strip_string_quotes=True)


def backend_file(env: str) -> dict[str, Any]:
    """The partial backend config as Terraform would read it (parsed here without our loader)."""
    data: dict[str, Any] = hcl2.loads(
        (ROOT / "backend_configs" / f"{env}.config").read_text(), serialization_options=_HCL
    )
    return data


@pytest.mark.parametrize("env", shipped_env_names())
@pytest.mark.parametrize("kind", naming.STACK_KINDS)
def test_backend_block_is_config_file_plus_stack_key(synth: Synthesized, kind: str, env: str) -> None:
    """Or, for a bootstrap stack still in phase 1 (a new environment), its explicit local file."""
    backend = synth.stack(naming.stack_id(kind, env))["terraform"]["backend"]
    if on_local_state(synth.env(env), kind):
        assert backend == {"local": {"path": f"../../../{naming.local_state_path(kind, env)}"}}
        return
    assert list(backend) == ["s3"]
    assert backend["s3"] == {**backend_file(env), "key": naming.state_key(kind)}


def on_local_state(env: Environment, kind: str) -> bool:
    """Only a bootstrap stack before its state bucket exists (``bootstrap_state = "local"``)."""
    return kind == "bootstrap" and env.settings.bootstrap_state == "local"


def test_every_shipped_environment_is_synthesized(synth: Synthesized) -> None:
    """Each environment has both files, and every stack kind of each is built."""
    backends = sorted(p.stem for p in (ROOT / "backend_configs").glob("*.config"))
    assert backends == shipped_env_names()
    assert synth.stack_names() == sorted(
        naming.stack_id(kind, env) for kind in naming.STACK_KINDS for env in shipped_env_names()
    )


def test_state_keys_are_distinct_per_stack_kind() -> None:
    keys = [naming.state_key(kind) for kind in naming.STACK_KINDS]
    assert len(set(keys)) == len(keys)
    assert naming.state_key("bootstrap") == "mlopspltf_infra/tf_remote_backend/terraform.tfstate"
    assert naming.state_key("mlflow") == "mlopspltf_infra/mlflow/terraform.tfstate"


@pytest.mark.parametrize("env", shipped_env_names())
def test_every_stack_state_is_locked(synth: Synthesized, env: str) -> None:
    """S3-native locking, a DynamoDB table, or both (during a migration window): never neither.
    (A local state file is locked by Terraform's own file lock.)"""
    for kind in naming.STACK_KINDS:
        if on_local_state(synth.env(env), kind):
            continue
        s3 = synth.stack(naming.stack_id(kind, env))["terraform"]["backend"]["s3"]
        assert "dynamodb_table" in s3 or s3.get("use_lockfile") is True, kind


@pytest.mark.parametrize("env", shipped_env_names())
def test_backend_config_files_match_naming_module(env: str) -> None:
    config = backend_file(env)
    assert config["bucket"] == naming.state_bucket(env)
    assert config.get("dynamodb_table", naming.lock_table(env)) == naming.lock_table(env)
    assert config["kms_key_id"] == naming.state_kms_alias(env)
    assert config["encrypt"] is True
    assert "key" not in config


@pytest.mark.parametrize("env", shipped_env_names())
def test_backend_config_files_are_valid_terraform_partial_configs(env: str) -> None:
    """A partial config holds bare `key = value` attributes: a `terraform { backend ... }` block
    in it would silently leave state local. (The state tests init real Terraform with them.)"""
    data = backend_file(env)
    assert "terraform" not in data and "backend" not in data
    assert all(not (isinstance(v, list) and v and isinstance(v[0], dict)) for v in data.values())


def test_bootstrap_phase_one_uses_an_explicit_local_backend(synth_with: Any, tmp_path: Path) -> None:
    files = ConfigFiles().sub(
        "env_specific_vars/dev.tfvars", r'^bootstrap_state = "s3"', 'bootstrap_state = "local"'
    )
    envs: list[Environment] = [e for e in files.load() if e.name == "dev"]
    out: Synthesized = synth_with(envs, ("bootstrap", "databricks"))
    assert out.stack("bootstrap-dev")["terraform"]["backend"] == {
        "local": {"path": "../../../local_state/bootstrap-dev.tfstate"}
    }
    # Only the bootstrap stack may ever use local state.
    assert list(out.stack("databricks-dev")["terraform"]["backend"]) == ["s3"]
    assert (ROOT / "cdktf.out").resolve() not in out.outdir.parents
