"""Issue 7 (5): an existing state (the Databricks seed's: lineage 8ac9ae2e-..., serial 7) placed at
the stack's key is picked up unchanged by ``init`` with our backend config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.runner import CommandError
from ops.state import adopt
from platform_config import naming
from tests.state.support import (
    COMMITTED,
    ENVS,
    SEED_LINEAGE,
    SEED_STATE,
    Applier,
    MotoServer,
    server_environment,
    synth_probe,
    terraform_env,
)

pytestmark = pytest.mark.state


def _addresses(doc: dict[str, object]) -> list[str]:
    resources = doc["resources"]
    assert isinstance(resources, list)
    return sorted(f"{r['type']}.{r['name']}" for r in resources if r["mode"] == "managed")


@pytest.mark.parametrize("env", ENVS)
def test_existing_state_is_adopted_unchanged(backend: MotoServer, tmp_path: Path, env: str) -> None:
    seed = SEED_STATE.read_bytes()
    seed_doc = json.loads(seed)
    assert (seed_doc["lineage"], seed_doc["serial"]) == (SEED_LINEAGE, 7)
    expected = _addresses(seed_doc)
    assert len(expected) == 6

    backend.put_state(env, "databricks", seed)
    stack_dir = synth_probe(tmp_path / "repo", server_environment(env, backend.url), "databricks")
    applier = Applier(stack_dir, terraform_env(tmp_path, stub_providers=("databricks/databricks",)))
    applier.init()

    info, pulled = applier.pull()
    assert (info.lineage, info.serial) == (SEED_LINEAGE, 7)
    assert _addresses(pulled) == expected
    # `state list` reads the state only: the placeholder Databricks plugin is never started.
    listed = applier.tf.run("state", "list").stdout.split()
    assert sorted(listed) == expected
    # Reading never rewrote it: byte-identical object, a single version in the bucket.
    assert backend.state_object(env, "databricks") == seed
    assert len(backend.state_versions(env, "databricks")) == 1
    key = naming.state_key("databricks")
    assert key == "mlopspltf_infra/databricks/terraform.tfstate"


def test_state_push_into_an_empty_key_and_how_to_keep_the_lineage(
    backend: MotoServer, tmp_path: Path
) -> None:
    """Characterises Terraform: the first snapshot written at an empty key gets a new lineage.

    Terraform's own remote-state code (internal/states/remote/state.go, since 0.12; OpenTofu too),
    not the test server: reproduced with the http backend as well.

    This is why ``migrate_bootstrap`` re-pushes with ``-force`` after checking the contents, and
    why "push the old state into the new key" alone does not adopt it. If this test starts
    failing because the first push keeps the lineage, Terraform fixed it: drop the workaround.
    """
    env = "prd"
    stack_dir = synth_probe(tmp_path / "repo", server_environment(env, backend.url), "databricks")
    applier = Applier(stack_dir, terraform_env(tmp_path, stub_providers=("databricks/databricks",)))
    applier.init()
    applier.tf.run("state", "push", str(SEED_STATE))
    first, pulled = applier.pull()
    assert _addresses(pulled) == _addresses(json.loads(SEED_STATE.read_bytes()))
    assert (first.lineage, first.serial) != (SEED_LINEAGE, 7), "Terraform now keeps the lineage"
    assert first.serial == 1

    applier.tf.run("state", "push", "-force", str(SEED_STATE))
    second, _ = applier.pull()
    assert (second.lineage, second.serial) == (SEED_LINEAGE, 8)


SEED_ONLY = {
    "aws_key_pair": ("mlflow_key", "registry.terraform.io/hashicorp/aws"),
    "tls_private_key": ("mlflow_key", "registry.terraform.io/hashicorp/tls"),
}


def _seed_of_the_hcl_deployment(
    backend: MotoServer, tmp_path: Path, extra: dict[str, tuple[str, str]]
) -> tuple[Path, Path]:
    """The old deployment's state: what the stack has (applied once), plus ``extra`` resources
    (type -> (name, provider)) and the seed's own lineage and serial; the bucket is then emptied."""
    stack_dir = synth_probe(tmp_path / "repo", server_environment("dev", backend.url), "mlflow")
    applier = Applier(stack_dir, terraform_env(tmp_path))
    applier.init()
    assert applier.apply(COMMITTED).returncode == 0
    _, doc = applier.pull()
    doc["lineage"], doc["serial"] = SEED_LINEAGE, 7
    for rtype, (name, provider) in extra.items():
        doc["resources"].append(
            {
                "mode": "managed",
                "type": rtype,
                "name": name,
                "provider": f'provider["{provider}"]',
                "instances": [{"schema_version": 0, "attributes": {"id": name}}],
            }
        )
    seed = tmp_path / "old.tfstate"
    seed.write_text(json.dumps(doc))
    backend.reset()
    for env in ENVS:
        backend.create_backend(env)
    return stack_dir, seed


def test_adoption_removes_the_seed_key_pair_first_and_keeps_the_lineage(
    backend: MotoServer, tmp_path: Path
) -> None:
    stack_dir, seed = _seed_of_the_hcl_deployment(backend, tmp_path, SEED_ONLY)
    original = seed.read_bytes()
    result = adopt(stack_dir, seed, tmp_path / "backups", env=terraform_env(tmp_path))

    assert sorted(result.removed) == ["aws_key_pair.mlflow_key", "tls_private_key.mlflow_key"]
    assert (result.source.lineage, result.source.serial) == (SEED_LINEAGE, 7)
    assert result.after.lineage == SEED_LINEAGE
    assert result.after.serial > 7
    assert seed.read_bytes() == original, "the old state file was modified"
    stored = json.loads(backend.state_object("dev", "mlflow") or b"{}")
    assert stored["lineage"] == SEED_LINEAGE
    assert _addresses(stored) == ["terraform_data.fixed", "terraform_data.payload"]

    again = adopt(stack_dir, seed, tmp_path / "backups", env=terraform_env(tmp_path))
    assert again.already_done


def test_adoption_refuses_a_plan_that_destroys(backend: MotoServer, tmp_path: Path) -> None:
    extra = {**SEED_ONLY, "terraform_data": ("only_in_the_old_code", "terraform.io/builtin/terraform")}
    stack_dir, seed = _seed_of_the_hcl_deployment(backend, tmp_path, extra)
    with pytest.raises(CommandError, match=r"would destroy or replace terraform_data\.only_in_the_old_code"):
        adopt(stack_dir, seed, tmp_path / "backups", env=terraform_env(tmp_path))
    assert backend.state_object("dev", "mlflow") is None, "pushed although the plan destroys"


def test_adoption_refuses_a_key_that_holds_another_state(backend: MotoServer, tmp_path: Path) -> None:
    stack_dir, seed = _seed_of_the_hcl_deployment(backend, tmp_path, {})
    other = {"version": 4, "terraform_version": "1.11.4", "serial": 3, "lineage": "other", "outputs": {}}
    backend.put_state("dev", "mlflow", json.dumps(other).encode())
    with pytest.raises(CommandError, match="already holds a state"):
        adopt(stack_dir, seed, tmp_path / "backups", env=terraform_env(tmp_path))
