"""Issue 7 (5) and issue 13: an existing state (the Databricks seed's: lineage 8ac9ae2e-..., serial 7) placed at
the stack's key is picked up unchanged by ``init`` with our backend config."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from ops import adopt, cli
from ops.runner import CommandError, UsageError
from ops.state import adopt as adopt_state
from platform_config import naming
from tests.conftest import ROOT, Synthesized
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

SEED_MODEL = "prod.my_mlops_project_luv_v6.my_mlops_project_luv_v6-model"


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
    result = adopt_state(stack_dir, seed, tmp_path / "backups", env=terraform_env(tmp_path))

    assert sorted(result.removed) == ["aws_key_pair.mlflow_key", "tls_private_key.mlflow_key"]
    assert (result.source.lineage, result.source.serial) == (SEED_LINEAGE, 7)
    assert result.after.lineage == SEED_LINEAGE
    assert result.after.serial > 7
    assert seed.read_bytes() == original, "the old state file was modified"
    stored = json.loads(backend.state_object("dev", "mlflow") or b"{}")
    assert stored["lineage"] == SEED_LINEAGE
    assert _addresses(stored) == ["terraform_data.fixed", "terraform_data.payload"]

    again = adopt_state(stack_dir, seed, tmp_path / "backups", env=terraform_env(tmp_path))
    assert again.already_done


def test_adoption_refuses_a_plan_that_destroys(backend: MotoServer, tmp_path: Path) -> None:
    extra = {**SEED_ONLY, "terraform_data": ("only_in_the_old_code", "terraform.io/builtin/terraform")}
    stack_dir, seed = _seed_of_the_hcl_deployment(backend, tmp_path, extra)
    with pytest.raises(CommandError, match=r"would destroy or replace terraform_data\.only_in_the_old_code"):
        adopt_state(stack_dir, seed, tmp_path / "backups", env=terraform_env(tmp_path))
    assert backend.state_object("dev", "mlflow") is None, "pushed although the plan destroys"


def test_adoption_refuses_a_key_that_holds_another_state(backend: MotoServer, tmp_path: Path) -> None:
    stack_dir, seed = _seed_of_the_hcl_deployment(backend, tmp_path, {})
    other = {"version": 4, "terraform_version": "1.11.4", "serial": 3, "lineage": "other", "outputs": {}}
    backend.put_state("dev", "mlflow", json.dumps(other).encode())
    with pytest.raises(CommandError, match="already holds a state"):
        adopt_state(stack_dir, seed, tmp_path / "backups", env=terraform_env(tmp_path))


# --- ops adopt: the bundle's state made databricks-<env>'s ----------------------------------------

PLAN = ROOT / "tests" / "fixtures" / "databricks_adoption_plan.json"
SIX = sorted(adopt.managed(json.loads(SEED_STATE.read_text())))


def recorded_plan(**actions: list[str]) -> dict[str, Any]:
    """The expected plan (a recorded ``terraform show -json``), with some actions changed."""
    plan: dict[str, Any] = json.loads(PLAN.read_text())
    for change in plan["resource_changes"]:
        change["change"]["actions"] = actions.get(
            change["address"].replace(".", "__"), change["change"]["actions"]
        )
    return plan


def test_the_expected_plan_passes_the_plan_check() -> None:
    plan = recorded_plan()
    assert adopt.plan_refusals(plan, SIX) == []
    assert list(adopt.planned_updates(plan)) == [
        "databricks_job.batch_inference_job: update",
        "databricks_job.model_training_job: update",
        "databricks_mlflow_experiment.experiment: update",
    ]


def test_the_plan_check_refuses_deletes_replacements_and_creates_of_adopted_addresses() -> None:
    plan = recorded_plan(
        databricks_registered_model__model=["delete", "create"],
        databricks_job__batch_inference_job=["delete"],
        databricks_mlflow_experiment__experiment=["create"],
    )
    plan["resource_changes"].append(
        {"address": "databricks_permissions.job_model_training_job", "change": {"actions": ["create"]}}
    )
    assert adopt.plan_refusals(plan, SIX) == [
        "databricks_job.batch_inference_job: delete (delete)",
        "databricks_mlflow_experiment.experiment: create (the adopted state should hold it)",
        "databricks_registered_model.model: replace (delete/create)",
    ]


def test_what_the_bundle_still_manages_and_how_to_unbind_it() -> None:
    summary = {
        "resources": {
            "jobs": {"model_training_job": {"id": "863140283668241"}, "batch_inference_job": {"id": ""}},
            "experiments": {"experiment": {"id": "1", "modified_status": "deleted"}},
            "registered_models": {"model": {"id": SEED_MODEL}},
        }
    }
    assert adopt.managed_in_summary(summary, SIX) == [
        "databricks_job.model_training_job",
        "databricks_registered_model.model",
    ]
    state_path = "/Users/u@x.io/.bundle/p/prod/state/terraform.tfstate"
    leftovers = [
        "databricks_grants.registered_model_model",
        "databricks_permissions.mlflow_experiment_experiment",
    ]
    assert adopt.unbind_steps(["databricks_registered_model.model", *leftovers], "prod", state_path) == [
        "databricks bundle deployment unbind model -t prod",
        f"databricks workspace export {state_path} --file bundle-prod.tfstate",
        "terraform state rm -state=bundle-prod.tfstate " + " ".join(leftovers),
        f"databricks workspace import {state_path} --file bundle-prod.tfstate --format AUTO --overwrite",
    ]


def test_the_bundle_is_asked_through_its_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``databricks bundle summary`` for the resources, the workspace state file for the rest."""
    bundle_state = {"resources": [r for r in json.loads(SEED_STATE.read_text())["resources"]
                                  if r["name"] == "mlflow_experiment_experiment"]}  # fmt: skip
    (tmp_path / "left.tfstate").write_text(json.dumps(bundle_state))
    fake = tmp_path / "bin" / "databricks"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {tmp_path}/calls\n'
        'if [ "$2" = summary ]; then echo \'{"resources": {"jobs": {"model_training_job": {"id": "1"}}}}\'; fi\n'
        f'if [ "$2" = export ]; then cp {tmp_path}/left.tfstate "$5"; fi\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    workspace = "/Users/u@x.io/.bundle/p/prod/state/terraform.tfstate"
    assert adopt.bundle_managed_now(SIX, None, tmp_path, "prod", workspace) == [
        "databricks_job.model_training_job",
        "databricks_permissions.mlflow_experiment_experiment",
    ]
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0] == "bundle summary -t prod -o json"
    assert calls[1].startswith(f"workspace export {workspace} --file ")


def test_without_a_way_to_ask_the_bundle_it_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UsageError, match="pass --bundle-state FILE"):
        adopt.bundle_managed_now(SIX, None, None, "prod", "/Users/u/.bundle/p/prod/state/terraform.tfstate")


@pytest.fixture
def prd_stack(synth: Synthesized, backend: MotoServer, tmp_path: Path) -> Path:
    """databricks-prd's synthesized JSON with the test server's backend (no provider needed: the
    plan is the recorded one, the push needs only the backend)."""
    probe = synth_probe(tmp_path / "repo", server_environment("prd", backend.url), "databricks")
    doc = synth.stack("databricks-prd")
    doc["terraform"]["backend"] = json.loads((probe / "cdk.tf.json").read_text())["terraform"]["backend"]
    (probe / "cdk.tf.json").write_text(json.dumps(doc))
    return probe


def pinned_databricks(stack_dir: Path) -> str:
    doc = json.loads((stack_dir / "cdk.tf.json").read_text())
    version: str = doc["terraform"]["required_providers"]["databricks"]["version"]
    return version


def run_adopt(stack_dir: Path, tmp_path: Path, source: Path = SEED_STATE, **kwargs: Any) -> adopt.Adoption:
    options: dict[str, Any] = {"bundle_managed": [], "project": "my_mlops_project_luv_v6", "target": "prod"}
    options.update(kwargs)
    plan = options.pop("recorded", None) or recorded_plan()
    return adopt.adopt(
        stack_dir,
        source,
        plan=lambda _stack, _state: plan,
        env=terraform_env(
            tmp_path, stub_providers=(f"databricks/databricks@{pinned_databricks(stack_dir)}",)
        ),
        **options,
    )


def test_adopt_writes_the_bundle_state_under_our_key_with_its_lineage(
    backend: MotoServer, prd_stack: Path, tmp_path: Path
) -> None:
    result = run_adopt(prd_stack, tmp_path)
    assert (result.after.lineage, result.after.serial, result.already_done) == (SEED_LINEAGE, 8, False)
    stored = json.loads(backend.state_object("prd", "databricks") or b"{}")
    assert stored["lineage"] == SEED_LINEAGE
    assert stored["resources"] == json.loads(SEED_STATE.read_text())["resources"]
    assert not [c for c in result.changes if c.replaces] and result.changes
    again = run_adopt(prd_stack, tmp_path)
    assert (again.after.serial, again.already_done) == (8, True)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"bundle_managed": ["databricks_job.model_training_job"]},
     "databricks bundle deployment unbind model_training_job -t prod"),
    ({"target": "staging"}, "target 'prod'; this environment is project 'my_mlops_project_luv_v6', target 'staging'"),
    ({"recorded": recorded_plan(databricks_registered_model__model=["delete", "create"])},
     "databricks_registered_model.model: replace"),
])  # fmt: skip
def test_adopt_refuses_and_writes_nothing(
    backend: MotoServer, prd_stack: Path, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        run_adopt(prd_stack, tmp_path, **kwargs)
    assert backend.state_object("prd", "databricks") is None


def test_adopt_refuses_a_state_of_another_bundle(
    backend: MotoServer, prd_stack: Path, tmp_path: Path
) -> None:
    other = tmp_path / "llmops.tfstate"
    other.write_text(SEED_STATE.read_text().replace("my_mlops_project_luv_v6", "LLMOps"))
    with pytest.raises(CommandError, match="the state is bundle 'LLMOps'") as exc:
        run_adopt(prd_stack, tmp_path, source=other)
    assert "databricks_registered_model.model: name" in str(exc.value)
    assert backend.state_object("prd", "databricks") is None


def test_adopt_never_replaces_another_state_at_our_key(
    backend: MotoServer, prd_stack: Path, tmp_path: Path
) -> None:
    theirs = json.loads(SEED_STATE.read_text())
    theirs["lineage"] = "00c0ffee-0000-4000-8000-000000000001"
    backend.put_state("prd", "databricks", json.dumps(theirs).encode())
    with pytest.raises(CommandError, match="our key already holds a state"):
        run_adopt(prd_stack, tmp_path)
    assert json.loads(backend.state_object("prd", "databricks") or b"{}")["lineage"] == theirs["lineage"]


def test_the_command_refuses_placeholders_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "repo"
    for directory in ("env_specific_vars", "backend_configs"):
        shutil.copytree(ROOT / directory, root / directory)
    rc = cli.main(["--root", str(root), "adopt", "--env", "prd", "--from", str(SEED_STATE)])
    assert rc == 2
    assert "env_specific_vars/prd.tfvars: databricks.host: placeholder value" in capsys.readouterr().err
