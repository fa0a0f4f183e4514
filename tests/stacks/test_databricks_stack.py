"""databricks-<env>: every resource and property, names per environment, snapshots, secrets and the
adoption of the bundle's Terraform state (seed 000)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cdktf import TerraformStack
from cdktf import Testing as CdktfTesting
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from constructs_lib.databricks_jobs import (
    JobClusterSpec,
    NotebookJob,
    NotebookJobProps,
    NotebookTaskSpec,
    ScheduleSpec,
    chained,
)
from ops.adopt import behaviour_changes, expected_changes, judge, name_mismatches, written_keys
from platform_config import hcl
from platform_config.loader import Environment
from platform_config.secrets import SECRET_VALUE_PATTERNS, find_secrets
from tests.conftest import ROOT, Check, Synthesized, shipped_env_names
from tests.fixtures.databricks_env import BASE, SEED_STATE, load_variants

SEED_MODEL = "prod.my_mlops_project_luv_v6.my_mlops_project_luv_v6-model"
SIX_ADDRESSES = {
    "databricks_grants.registered_model_model",
    "databricks_job.batch_inference_job",
    "databricks_job.model_training_job",
    "databricks_mlflow_experiment.experiment",
    "databricks_permissions.mlflow_experiment_experiment",
    "databricks_registered_model.model",
}
# What the stack adds to the bundle's resources: every job's whole ACL with its owner, the
# notebooks' folder ACL, the run-as and plan principals' privileges on the schema.
ACCESS_ADDRESSES = {
    "databricks_permissions.job_model_training_job",
    "databricks_permissions.job_batch_inference_job",
    "databricks_permissions.notebooks",
    "databricks_grant.schema_run_as",
    "databricks_grant.schema_plan",
}


def stack(synth: Synthesized, env: str) -> dict[str, Any]:
    return synth.stack(f"databricks-{env}")


def addresses(doc: dict[str, Any]) -> set[str]:
    return {f"{rtype}.{name}" for rtype, items in doc.get("resource", {}).items() for name in items}


def one(synth: Synthesized, env: str, rtype: str, name: str) -> dict[str, Any]:
    resource: dict[str, Any] = synth.resources(f"databricks-{env}", rtype)[name]
    return resource


def files_root(e: Environment) -> str:
    """Where the jobs look for the notebooks: `files_root` when written, else the bundle root of the
    deployer (default: the deploy principal), whose bundle deploy uploads them (`/Workspace/Users/...`,
    CLI 0.230 on)."""
    names = e.names.databricks
    settings = e.settings.databricks
    deployer = settings.deployer or settings.deploy_principal
    default = f"/Workspace/Users/{deployer}/.bundle/{names.project}/{names.target}/files"
    return settings.files_root or default


def deploy_principal_files(e: Environment) -> str:
    names = e.names.databricks
    principal = e.settings.databricks.deploy_principal
    return f"/Workspace/Users/{principal}/.bundle/{names.project}/{names.target}/files"


def context(e: Environment) -> dict[str, str]:
    """The base parameters every task gets: where it runs."""
    names = e.names.databricks
    return {
        "env": names.target,
        "catalog": names.catalog,
        "schema": names.schema,
        "model_name": f"{names.catalog}.{names.schema}.{names.model}",
        "experiment_name": names.experiment_path,
    }


JOBS = ("model_training_job", "batch_inference_job")


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("env", shipped_env_names())
def test_snapshot(synth: Synthesized, env: str, snapshot_json: SnapshotAssertion) -> None:
    assert stack(synth, env) == snapshot_json


# --- addresses, provider, backend ----------------------------------------------------------------


def check_the_seed_addresses_and_the_access(synth: Synthesized, e: Environment) -> None:
    """The bundle's six addresses, plus the access this stack declares."""
    assert addresses(stack(synth, e.name)) == SIX_ADDRESSES | ACCESS_ADDRESSES


def check_provider_gets_the_host_and_the_audience(synth: Synthesized, e: Environment) -> None:
    """No credential; the audience every GitHub OIDC token exchange asks for (issue 23: never the
    provider's default, the workspace token endpoint, which a policy without audiences refuses)."""
    env = e.name
    doc = stack(synth, env)
    names = e.names.databricks
    assert doc["provider"] == {"databricks": [{"host": names.host, "audience": names.oidc_audience}]}
    assert names.oidc_audience == e.settings.databricks.oidc_audience
    assert set(doc["terraform"]["required_providers"]) == {"databricks"}
    assert doc["terraform"]["required_providers"]["databricks"]["source"] == "databricks/databricks"


def check_state_lives_in_the_environment_backend(synth: Synthesized, e: Environment) -> None:
    env = e.name
    backend = stack(synth, env)["terraform"]["backend"]["s3"]
    assert backend["bucket"] == f"mlopspltf-{env}-s3-tf-backend"
    assert backend["key"] == "mlopspltf_infra/databricks/terraform.tfstate"
    assert backend["encrypt"] is True


# --- model and grants ----------------------------------------------------------------------------


def check_registered_model_per_environment(synth: Synthesized, e: Environment) -> None:
    env = e.name
    model = one(synth, env, "databricks_registered_model", "model")
    names = e.names.databricks
    # The template's names: catalog = target, schema = project, model = <project>-model.
    assert (model["catalog_name"], model["schema_name"], model["name"]) == (
        names.target,
        names.project,
        f"{names.project}-model",
    )
    assert "storage_location" not in model
    # Only the owner adds versions and sets aliases: the run-as principal, unless model.owner.
    assert model["owner"] == (
        e.settings.databricks.model.owner or e.settings.databricks.run_as_service_principal
    )
    assert model.get("comment") == e.settings.databricks.model.comment


def test_prd_model_full_name_is_the_seeds(synth: Synthesized) -> None:
    model = one(synth, "prd", "databricks_registered_model", "model")
    assert ".".join((model["catalog_name"], model["schema_name"], model["name"])) == SEED_MODEL
    model_name_params = [
        t["notebook_task"]["base_parameters"]["model_name"]
        for t in one(synth, "prd", "databricks_job", "batch_inference_job")["task"]
    ]
    assert model_name_params == [SEED_MODEL]


def check_model_grants_execute_to_account_users(synth: Synthesized, e: Environment) -> None:
    env = e.name
    grants = one(synth, env, "databricks_grants", "registered_model_model")
    assert grants["function"] == "${databricks_registered_model.model.id}"
    assert grants["grant"] == [{"principal": "account users", "privileges": ["EXECUTE"]}]
    assert {k for k in grants if k != "//"} == {"function", "grant"}


# --- experiment ----------------------------------------------------------------------------------


def check_experiment_path_and_permissions(synth: Synthesized, e: Environment) -> None:
    env = e.name
    experiment = one(synth, env, "databricks_mlflow_experiment", "experiment")
    names = e.names.databricks
    deployer = e.settings.databricks.deployer or e.settings.databricks.deploy_principal
    assert experiment["name"] == f"/Users/{deployer}/{names.target}-{names.project}-experiment"
    permissions = one(synth, env, "databricks_permissions", "mlflow_experiment_experiment")
    assert permissions["experiment_id"] == "${databricks_mlflow_experiment.experiment.id}"
    names = e.names.databricks
    assert permissions["access_control"] == [
        {"group_name": "users", "permission_level": "CAN_READ"},
        *sorted(
            (
                {"service_principal_name": names.plan_principal, "permission_level": "CAN_READ"},
                {"service_principal_name": names.deploy_principal, "permission_level": "CAN_MANAGE"},
                {"service_principal_name": names.run_as, "permission_level": "CAN_EDIT"},
            ),
            key=lambda a: a["service_principal_name"],
        ),
    ]


# --- jobs ----------------------------------------------------------------------------------------


def check_training_tasks_sorted_by_key_run_in_order(synth: Synthesized, e: Environment) -> None:
    """Written sorted by task_key (the provider's read order); the run order is only depends_on,
    each task after its predecessor in the file succeeded; every task gets the run context."""
    tasks = one(synth, e.name, "databricks_job", "model_training_job")["task"]
    keys = [t["task_key"] for t in tasks]
    assert keys == sorted(keys)
    by_key = {t["task_key"]: t for t in tasks}
    training = e.settings.databricks.training
    assert training.layout == "notebooks"
    first = by_key[training.tasks[0].key]
    assert "depends_on" not in first and "run_if" not in first
    for previous, task in itertools.pairwise(training.tasks):
        assert by_key[task.key]["depends_on"] == [{"task_key": previous.key}]
        assert by_key[task.key]["run_if"] == "ALL_SUCCESS"
    for spec in training.tasks:
        assert by_key[spec.key]["notebook_task"] == {
            "notebook_path": f"{files_root(e)}/{spec.notebook}",
            "base_parameters": {**context(e), **spec.parameters},
        }


def check_job_names_carry_the_target(synth: Synthesized, e: Environment) -> None:
    """`<target>-` in every target, production too (the template's names; prod's state has it)."""
    env = e.name
    names = e.names.databricks
    prefix = f"{names.target}-"
    assert (
        one(synth, env, "databricks_job", "model_training_job")["name"]
        == f"{prefix}{names.project}-model-training-job"
    )
    assert (
        one(synth, env, "databricks_job", "batch_inference_job")["name"]
        == f"{prefix}{names.project}-batch-inference-job"
    )


def check_schedules_unpaused(synth: Synthesized, e: Environment) -> None:
    """Unpaused in every shipped target, as a bundle outside development mode deploys them."""
    env = e.name
    expected = "UNPAUSED"
    settings = e.settings.databricks
    for name, schedule in zip(
        JOBS, (settings.training.schedule, settings.batch_inference.schedule), strict=True
    ):
        assert one(synth, env, "databricks_job", name)["schedule"] == {
            "quartz_cron_expression": schedule.cron,
            "timezone_id": schedule.timezone,
            "pause_status": expected,
        }


def check_queueing_on(synth: Synthesized, e: Environment) -> None:
    """Unset, provider 1.99.0 sends `queue.enabled=false` on every update; bundles enable it."""
    for name in JOBS:
        assert one(synth, e.name, "databricks_job", name)["queue"] == {"enabled": True}


def check_batch_inference_task(synth: Synthesized, e: Environment) -> None:
    env = e.name
    job = one(synth, env, "databricks_job", "batch_inference_job")
    (task,) = job["task"]
    target, project = e.names.databricks.target, e.names.databricks.project
    assert task["task_key"] == "batch_inference_job"
    assert task["notebook_task"] == {
        "notebook_path": f"{files_root(e)}/deployment/batch_inference/notebooks/BatchInference",
        "base_parameters": {
            **{k: v for k, v in context(e).items() if k != "experiment_name"},
            **e.settings.databricks.batch_inference.parameters,
            "input_table_name": e.settings.databricks.batch_inference.input_table,
            "output_table_name": f"{target}.{project}.predictions",
        },
    }
    assert "depends_on" not in task


def test_prd_jobs_run_on_the_seed_state_cluster(synth: Synthesized, seed_state: dict[str, Any]) -> None:
    for name in JOBS:
        job = one(synth, "prd", "databricks_job", name)
        state_job = seed_state_attributes(seed_state)[f"databricks_job.{name}"]
        theirs = {t["existing_cluster_id"] for t in state_job["task"]}
        assert {t["existing_cluster_id"] for t in job["task"]} == theirs == {"0415-213012-yi87kqjn"}


def test_default_runtime_is_an_lts_ml_release(variants: Synthesized) -> None:
    for job in variants.resources("databricks-tmpl", "databricks_job").values():
        assert job["job_cluster"][0]["new_cluster"]["spark_version"] == "15.4.x-cpu-ml-scala2.12"


@pytest.mark.parametrize("env", shipped_env_names())
def test_shipped_notebooks_are_where_the_deploy_principal_uploads_them(synth: Synthesized, env: str) -> None:
    """dev and tst: the deployer is the deploy principal; prd writes files_root to move there."""
    e = synth.env(env)
    assert e.names.databricks.files_root == files_root(e) == deploy_principal_files(e)


def check_jobs_run_on_their_cluster(synth: Synthesized, e: Environment) -> None:
    """On the job's existing cluster when it names one, else on a job cluster of the settings."""
    settings = e.settings.databricks
    existing = (settings.training.existing_cluster_id, settings.batch_inference.existing_cluster_id)
    for name, cluster_id in zip(JOBS, existing, strict=True):
        job = one(synth, e.name, "databricks_job", name)
        if cluster_id:
            assert "job_cluster" not in job
            assert {t["existing_cluster_id"] for t in job["task"]} == {cluster_id}
            assert all("job_cluster_key" not in t for t in job["task"])
            continue
        (cluster,) = job["job_cluster"]
        assert cluster["job_cluster_key"] == f"{name}_cluster"
        new = cluster["new_cluster"]
        workers = settings.job_cluster.num_workers
        assert new["spark_version"] == settings.job_cluster.spark_version
        assert new["node_type_id"] == e.names.databricks.node_type_id
        assert new["num_workers"] == workers
        assert new["data_security_mode"] == settings.job_cluster.data_security_mode
        assert new["custom_tags"]["Environment"] == e.name
        assert {t["job_cluster_key"] for t in job["task"]} == {f"{name}_cluster"}
        assert all("existing_cluster_id" not in t for t in job["task"])
        if workers == 0:
            assert new["spark_conf"] == {
                "spark.databricks.cluster.profile": "singleNode",
                "spark.master": "local[*]",
            }
            assert new["custom_tags"]["ResourceClass"] == "SingleNode"
        else:
            assert "spark_conf" not in new and "ResourceClass" not in new["custom_tags"]


def test_shipped_environments_use_both_kinds_of_cluster(synth: Synthesized) -> None:
    """The shipped files cover an existing cluster, a single-node and a multi-node job cluster."""
    settings = [e.settings.databricks for e in synth.envs]
    assert any(s.training.existing_cluster_id for s in settings)
    workers = {s.job_cluster.num_workers for s in settings if not s.training.existing_cluster_id}
    assert 0 in workers and any(w > 0 for w in workers)


def check_job_settings(synth: Synthesized, e: Environment) -> None:
    settings = e.settings.databricks
    for name in JOBS:
        job = one(synth, e.name, "databricks_job", name)
        emails = list(settings.notifications.on_failure)
        assert job.get("email_notifications") == ({"on_failure": emails} if emails else None)
        assert job["timeout_seconds"] == settings.timeout_seconds
        assert job["max_concurrent_runs"] == settings.max_concurrent_runs
        assert {t["max_retries"] for t in job["task"]} == {settings.max_retries}
        assert job["run_as"] == {"service_principal_name": settings.run_as_service_principal}
        assert job["tags"]["Stack"] == f"databricks-{e.name}"
        assert settings.tags.items() <= job["tags"].items()


def check_outputs(synth: Synthesized, e: Environment) -> None:
    env = e.name
    outputs = stack(synth, env)["output"]
    assert outputs["databricks_target"]["value"] == e.names.databricks.target
    assert outputs["registered_model_full_name"]["value"] == "${databricks_registered_model.model.id}"
    assert outputs["mlflow_experiment_id"]["value"] == "${databricks_mlflow_experiment.experiment.id}"
    assert outputs["model_training_job_url"]["value"] == "${databricks_job.model_training_job.url}"
    assert outputs["batch_inference_job_id"]["value"] == "${databricks_job.batch_inference_job.id}"
    assert all(o["description"] for o in outputs.values())
    assert not any(o["sensitive"] for o in outputs.values())


# --- secrets -------------------------------------------------------------------------------------


def check_no_secret_in_synthesized_json(synth: Synthesized, e: Environment) -> None:
    doc = stack(synth, e.name)
    assert list(find_secrets(doc)) == []
    assert set(doc["provider"]["databricks"][0]) == {"host", "audience"}


@pytest.mark.parametrize("env", shipped_env_names())
def test_no_secret_in_tfvars(env: str) -> None:
    text = (ROOT / "env_specific_vars" / f"{env}.tfvars").read_text()
    data, problems = hcl.parse(text, f"{env}.tfvars")
    assert problems == []
    assert list(find_secrets(data)) == []
    assert [kind for kind, pattern in SECRET_VALUE_PATTERNS.items() if pattern.search(text)] == []
    for word in ("token", "secret", "password", "client_id", "dapi"):
        assert word not in json.dumps(data["databricks"]).lower()


def test_no_secret_in_the_seed_state_fixture() -> None:
    text = SEED_STATE.read_text()
    assert list(find_secrets(json.loads(text))) == []
    assert [kind for kind, pattern in SECRET_VALUE_PATTERNS.items() if pattern.search(text)] == []


def test_the_secret_scan_can_fail(synth: Synthesized) -> None:
    doc = json.loads(json.dumps(stack(synth, "dev")))
    doc["provider"]["databricks"][0]["token"] = "dapi" + "0123456789abcdef" * 2
    doc["resource"]["databricks_job"]["model_training_job"]["tags"]["x"] = "dapi" + "f" * 32
    assert [path for path, _ in find_secrets(doc)] == [
        "provider.databricks[0].token",
        "resource.databricks_job.model_training_job.tags.x",
    ]


# --- adoption of the bundle's state --------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_state() -> dict[str, Any]:
    state: dict[str, Any] = json.loads(SEED_STATE.read_text())
    return state


def seed_state_attributes(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{r['type']}.{r['name']}": r["instances"][0]["attributes"] for r in state["resources"]}


def test_seed_state_fixture_is_the_seeds(seed_state: dict[str, Any]) -> None:
    assert seed_state["version"] == 4
    assert seed_state["terraform_version"] == "1.5.5"
    assert seed_state["serial"] == 7
    assert seed_state["lineage"] == "8ac9ae2e-dc90-fc6f-07e9-e0a885d24582"
    assert len(seed_state["resources"]) == 6
    for resource in seed_state["resources"]:
        assert resource["mode"] == "managed"
        assert resource["provider"] == 'provider["registry.terraform.io/databricks/databricks"]'
        (instance,) = resource["instances"]
        assert instance["attributes"]["id"]
        # The provider's schema versions: 2 for jobs, 0 for the others.
        assert instance["schema_version"] == (2 if resource["type"] == "databricks_job" else 0)
    attrs = seed_state_attributes(seed_state)
    metadata = (
        "/Users/maaheshwarispandan97@outlook.com/.bundle/my_mlops_project_luv_v6/prod/state/metadata.json"
    )
    for name in JOBS:
        job = attrs[f"databricks_job.{name}"]
        assert job["deployment"] == [{"kind": "BUNDLE", "metadata_file_path": metadata}]
        keys = [t["task_key"] for t in job["task"]]
        assert keys == sorted(keys)  # the provider sorts on read
    assert attrs["databricks_registered_model.model"]["id"] == SEED_MODEL


def test_prd_declares_the_seed_state_addresses_and_adds_only_access(
    synth: Synthesized, seed_state: dict[str, Any]
) -> None:
    state_addresses = {f"{r['type']}.{r['name']}" for r in seed_state["resources"]}
    assert state_addresses == SIX_ADDRESSES
    assert addresses(stack(synth, "prd")) - state_addresses == ACCESS_ADDRESSES


def test_prd_identities_match_the_seed_state(synth: Synthesized, seed_state: dict[str, Any]) -> None:
    """Attributes that force replacement (or rename) must equal the adopted state's values."""
    attrs = seed_state_attributes(seed_state)
    model = one(synth, "prd", "databricks_registered_model", "model")
    state_model = attrs["databricks_registered_model.model"]
    for key in ("catalog_name", "schema_name", "name"):
        assert model[key] == state_model[key]
    assert state_model["id"] == SEED_MODEL
    assert attrs["databricks_grants.registered_model_model"]["function"] == SEED_MODEL
    experiment = one(synth, "prd", "databricks_mlflow_experiment", "experiment")
    assert experiment["name"] == attrs["databricks_mlflow_experiment.experiment"]["name"]
    for name in ("model_training_job", "batch_inference_job"):
        ours = [t["task_key"] for t in one(synth, "prd", "databricks_job", name)["task"]]
        theirs = [t["task_key"] for t in attrs[f"databricks_job.{name}"]["task"]]
        assert ours == theirs
        # The same notebooks, moved on purpose from the person's stale copy to the deploy
        # principal's bundle root (prd.tfvars writes files_root; ops adopt lists it as intended).
        person = "/Users/maaheshwarispandan97@outlook.com/.bundle/my_mlops_project_luv_v6/prod/files"
        state_paths = [
            t["notebook_task"][0]["notebook_path"].replace(person, deploy_principal_files(synth.env("prd")))
            for t in attrs[f"databricks_job.{name}"]["task"]
        ]
        assert [
            t["notebook_task"]["notebook_path"] for t in one(synth, "prd", "databricks_job", name)["task"]
        ] == state_paths


# --- variants: template layout, other clouds, options --------------------------------------------

TEMPLATE_BLOCK: dict[str, Any] = {
    **BASE,
    "cloud": "aws",
    "host": "https://dbc-a1b2c3d4-e5f6.cloud.databricks.com",
    "model": {"storage_location": "s3://ml-models/registry", "owner": "ml-admins", "comment": "c"},
    "model_execute_principals": ["account users", "ml-consumers"],
    "experiment_read_groups": ["users", "analysts"],
    "training": {
        "training_data_path": "/Volumes/main/raw/taxi",
        "validation": {"run_mode": "enabled", "enable_baseline_comparison": True},
        "schedule": {"cron": "0 30 6 ? * MON-FRI", "timezone": "Europe/Berlin"},
    },
    "batch_inference": {"input_table": "main.raw.taxi_scoring", "output_table": "main.scored.predictions"},
    "run_as_service_principal": "6f1c2f34-8a1b-4c2d-9e3f-0a1b2c3d4e5f",
    "tags": {"team": "ml"},
    "max_retries": 2,
    "max_concurrent_runs": 3,
}
GCP_BLOCK: dict[str, Any] = {
    **BASE,
    "cloud": "gcp",
    "host": "https://1234567890123456.7.gcp.databricks.com",
    "target": "qa",
    "catalog": "qa_catalog",
    "schema": "rag",
    "model_name": "rag-chain",
    "experiment_path": "/Shared/rag/qa-experiment",
    "files_root": "/Workspace/Shared/rag/files",
    "job_name_prefix": "[qa] ",
    "training": {
        "layout": "notebooks",
        "tasks": [
            {"key": "prep", "notebook": "nb/prep", "parameters": {"source": "pdfs"}},
            {"key": "eval", "notebook": "/Repos/team/rag/eval"},
        ],
    },
    "batch_inference": {"existing_cluster_id": "0101-000000-abcdefgh"},
    "job_cluster": {"node_type_id": "n2-standard-8", "num_workers": 2},
}


@pytest.fixture(scope="module")
def variants(synth_with: Callable[[list[Environment], tuple[str, ...]], Synthesized]) -> Synthesized:
    envs = load_variants({"tmpl": (TEMPLATE_BLOCK, "dev"), "gcpx": (GCP_BLOCK, "tst")})
    return synth_with(envs, ("databricks",))


def test_variants_synthesize_only_databricks(variants: Synthesized) -> None:
    assert variants.stack_names() == ["databricks-gcpx", "databricks-tmpl"]
    for name in variants.stack_names():
        assert addresses(variants.stack(name)) >= SIX_ADDRESSES


def test_template_layout(variants: Synthesized) -> None:
    job = variants.resources("databricks-tmpl", "databricks_job")["model_training_job"]
    tasks = job["task"]
    root = "/Workspace/Users/deployer@example.com/.bundle/my_mlops_project_luv_v6/tmpl/files"
    experiment = "/Users/deployer@example.com/tmpl-my_mlops_project_luv_v6-experiment"
    model = "tmpl.my_mlops_project_luv_v6.my_mlops_project_luv_v6-model"
    # Sorted by key; Train -> ModelValidation -> ModelDeployment only through depends_on.
    assert [(t["task_key"], t["notebook_task"]["notebook_path"]) for t in tasks] == [
        ("ModelDeployment", f"{root}/deployment/model_deployment/notebooks/ModelDeployment"),
        ("ModelValidation", f"{root}/validation/notebooks/ModelValidation"),
        ("Train", f"{root}/training/notebooks/Train"),
    ]
    assert [t.get("depends_on") for t in tasks] == [
        [{"task_key": "ModelValidation"}],
        [{"task_key": "Train"}],
        None,
    ]
    deployment, validation, train = (t["notebook_task"]["base_parameters"] for t in tasks)
    run_context = {
        "env": "tmpl",
        "catalog": "tmpl",
        "schema": "my_mlops_project_luv_v6",
        "model_name": model,
        "experiment_name": experiment,
    }
    assert train == {**run_context, "training_data_path": "/Volumes/main/raw/taxi"}
    assert run_context.items() <= validation.items() and run_context.items() <= deployment.items()
    assert validation["run_mode"] == "enabled"
    assert validation["enable_baseline_comparison"] == "true"
    assert validation["model_type"] == "regressor" and validation["targets"] == "fare_amount"
    assert validation["model_name"] == model
    assert validation["model_version"] == "{{tasks.Train.values.model_version}}"
    assert deployment["model_version"] == "{{tasks.Train.values.model_version}}"


def test_template_variant_options(variants: Synthesized) -> None:
    doc = variants.stack("databricks-tmpl")
    jobs = doc["resource"]["databricks_job"]
    training = jobs["model_training_job"]
    assert training["schedule"] == {
        "quartz_cron_expression": "0 30 6 ? * MON-FRI",
        "timezone_id": "Europe/Berlin",
        "pause_status": "UNPAUSED",
    }
    assert training["name"] == "tmpl-my_mlops_project_luv_v6-model-training-job"
    for job in jobs.values():
        assert job["run_as"] == {"service_principal_name": "6f1c2f34-8a1b-4c2d-9e3f-0a1b2c3d4e5f"}
        assert job["max_concurrent_runs"] == 3
        assert {t["max_retries"] for t in job["task"]} == {2}
        assert job["tags"]["team"] == "ml"
        assert job["job_cluster"][0]["new_cluster"]["node_type_id"] == "i3.xlarge"
        assert "email_notifications" not in job
    batch = jobs["batch_inference_job"]["task"][0]["notebook_task"]["base_parameters"]
    assert batch["input_table_name"] == "main.raw.taxi_scoring"
    assert batch["output_table_name"] == "main.scored.predictions"
    model = doc["resource"]["databricks_registered_model"]["model"]
    assert model["storage_location"] == "s3://ml-models/registry"
    assert model["owner"] == "ml-admins"
    grants = doc["resource"]["databricks_grants"]["registered_model_model"]["grant"]
    assert [g["principal"] for g in grants] == ["account users", "ml-consumers"]
    access = doc["resource"]["databricks_permissions"]["mlflow_experiment_experiment"]["access_control"]
    assert [a.get("group_name") for a in access][:2] == ["analysts", "users"]


def sp(principal: str, level: str) -> dict[str, str]:
    return {"service_principal_name": principal, "permission_level": level}


def check_jobs_declare_their_whole_acl(synth: Synthesized, e: Environment) -> None:
    """Each job's ACL names its one owner (else the provider makes the applier the owner, and with
    it who the job runs as), the deploy principal, the plan principal and the view groups: every
    direct entry, so a plan by the plan principal reads back what it declares."""
    names = e.names.databricks
    owner = e.settings.databricks.job_owner or names.deploy_principal
    for job in JOBS:
        permissions = one(synth, e.name, "databricks_permissions", f"job_{job}")
        assert permissions["job_id"] == f"${{databricks_job.{job}.id}}"
        access = permissions["access_control"]
        assert [a for a in access if a["permission_level"] == "IS_OWNER"] == [
            {("service_principal_name" if owner == names.deploy_principal else "user_name"): owner,
             "permission_level": "IS_OWNER"}
        ]  # fmt: skip
        assert sp(names.plan_principal, "CAN_VIEW") in access
        if owner != names.deploy_principal:
            assert sp(names.deploy_principal, "CAN_MANAGE") in access
        groups = [a["group_name"] for a in access if "group_name" in a]
        assert groups == sorted(e.settings.databricks.job_view_groups)
        assert all(a["permission_level"] == "CAN_VIEW" for a in access if "group_name" in a)
        principals = [next(v for k, v in a.items() if k != "permission_level") for a in access]
        assert (
            len(principals)
            == len(set(principals))
            == (2 if owner == names.deploy_principal else 3) + len(groups)
        )


def check_notebooks_folder_access(synth: Synthesized, e: Environment) -> None:
    """The run-as principal may run the notebooks where the jobs look for them, the plan principal
    read them, the deploy principal manage them; the path without /Workspace (how the API names it)."""
    names = e.names.databricks
    folder = one(synth, e.name, "databricks_permissions", "notebooks")
    assert folder["directory_path"] == names.files_root.removeprefix("/Workspace")
    assert not folder["directory_path"].startswith("/Workspace")
    assert sorted(folder["access_control"], key=lambda a: a["permission_level"]) == [
        sp(names.deploy_principal, "CAN_MANAGE"),
        sp(names.plan_principal, "CAN_READ"),
        sp(names.run_as, "CAN_RUN"),
    ]


def check_schema_grants_of_run_as_and_plan(synth: Synthesized, e: Environment) -> None:
    """One `databricks_grant` per principal: the run-as principal reads the input and writes the
    predictions, the plan principal may use the schema; nobody else's grants are touched."""
    names = e.names.databricks
    grants = synth.resources(f"databricks-{e.name}", "databricks_grant")
    schema = f"{names.catalog}.{names.schema}"
    assert grants["schema_run_as"] | {"//": None} == {
        "//": None, "schema": schema, "principal": names.run_as,
        "privileges": ["CREATE_TABLE", "MODIFY", "SELECT", "USE_SCHEMA"],
    }  # fmt: skip
    assert grants["schema_plan"] | {"//": None} == {
        "//": None, "schema": schema, "principal": names.plan_principal, "privileges": ["USE_SCHEMA"],
    }  # fmt: skip


def test_prd_jobs_stay_owned_by_the_person_until_an_admin_transfers_them(synth: Synthesized) -> None:
    e = synth.env("prd")
    names = e.names.databricks
    assert names.job_owner == e.settings.databricks.deployer == "maaheshwarispandan97@outlook.com"
    for job in JOBS:
        access = one(synth, "prd", "databricks_permissions", f"job_{job}")["access_control"]
        assert {"user_name": names.job_owner, "permission_level": "IS_OWNER"} in access
        assert sp(names.deploy_principal, "CAN_MANAGE") in access


def test_the_deploy_principal_owns_the_jobs_unless_told_otherwise(variants: Synthesized) -> None:
    owner = sp(BASE["deploy_principal"], "IS_OWNER")
    for job in JOBS:
        access = variants.resources("databricks-tmpl", "databricks_permissions")[f"job_{job}"][
            "access_control"
        ]
        assert owner in access and sp(BASE["deploy_principal"], "CAN_MANAGE") not in access


def test_explicit_names_and_mixed_clusters(variants: Synthesized) -> None:
    doc = variants.stack("databricks-gcpx")
    model = doc["resource"]["databricks_registered_model"]["model"]
    assert (model["catalog_name"], model["schema_name"], model["name"]) == ("qa_catalog", "rag", "rag-chain")
    assert (
        doc["resource"]["databricks_mlflow_experiment"]["experiment"]["name"] == "/Shared/rag/qa-experiment"
    )
    jobs = doc["resource"]["databricks_job"]
    training, batch = jobs["model_training_job"], jobs["batch_inference_job"]
    assert training["name"] == "[qa] my_mlops_project_luv_v6-model-training-job"
    evaluate, prep = training["task"]  # sorted by key; eval runs after prep
    assert [t["notebook_task"]["notebook_path"] for t in (prep, evaluate)] == [
        "/Workspace/Shared/rag/files/nb/prep",
        "/Repos/team/rag/eval",
    ]
    assert evaluate["depends_on"] == [{"task_key": "prep"}] and "depends_on" not in prep
    run_context = {
        "env": "qa",
        "catalog": "qa_catalog",
        "schema": "rag",
        "model_name": "qa_catalog.rag.rag-chain",
        "experiment_name": "/Shared/rag/qa-experiment",
    }
    assert prep["notebook_task"]["base_parameters"] == {**run_context, "source": "pdfs"}
    assert evaluate["notebook_task"]["base_parameters"] == run_context
    new = training["job_cluster"][0]["new_cluster"]
    assert (new["node_type_id"], new["num_workers"]) == ("n2-standard-8", 2)
    assert "job_cluster" not in batch
    assert batch["task"][0]["existing_cluster_id"] == "0101-000000-abcdefgh"
    assert (
        batch["task"][0]["notebook_task"]["base_parameters"]["output_table_name"]
        == "qa_catalog.rag.predictions"
    )


def test_gcp_default_node_type(
    synth_with: Callable[[list[Environment], tuple[str, ...]], Synthesized],
) -> None:
    block = {**GCP_BLOCK, "job_cluster": {}, "batch_inference": {}}
    envs = load_variants({"gcpd": (block, "tst")})
    out = synth_with(envs, ("databricks",))
    for job in out.resources("databricks-gcpd", "databricks_job").values():
        assert job["job_cluster"][0]["new_cluster"]["node_type_id"] == "n2-highmem-4"


def test_production_variant_is_unpaused_and_prefixed(
    synth_with: Callable[[list[Environment], tuple[str, ...]], Synthesized],
) -> None:
    envs = load_variants({"prd2": ({**BASE, "target": "prod"}, "prd")})
    assert envs[0].settings.is_production
    out = synth_with(envs, ("databricks",))
    for name, job in out.resources("databricks-prd2", "databricks_job").items():
        assert job["schedule"]["pause_status"] == "UNPAUSED"
        assert job["name"] == f"prod-my_mlops_project_luv_v6-{name.replace('_', '-')}"


@pytest.mark.parametrize(("block", "paused"), [
    ({"pause_schedules": True}, {"model_training_job": "PAUSED", "batch_inference_job": "PAUSED"}),
    ({"pause_schedules": True, "batch_inference": {"schedule": {"cron": "0 0 11 * * ?", "paused": False}}},
     {"model_training_job": "PAUSED", "batch_inference_job": "UNPAUSED"}),
    ({"training": {"schedule": {"cron": "0 0 9 * * ?", "paused": True}}},
     {"model_training_job": "PAUSED", "batch_inference_job": "UNPAUSED"}),
])  # fmt: skip
def test_schedules_pause_only_when_asked(
    synth_with: Callable[[list[Environment], tuple[str, ...]], Synthesized],
    block: dict[str, Any],
    paused: dict[str, str],
) -> None:
    envs = load_variants({"pause": ({**BASE, **block}, "dev")})
    jobs = synth_with(envs, ("databricks",)).resources("databricks-pause", "databricks_job")
    assert {name: job["schedule"]["pause_status"] for name, job in jobs.items()} == paused


# --- the job construct on its own ----------------------------------------------------------------

CLUSTER = JobClusterSpec("15.4.x-cpu-ml-scala2.12", "i3.xlarge", 1, "SINGLE_USER")
SCHEDULE = ScheduleSpec("0 0 9 * * ?", "UTC", paused=True)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cluster": CLUSTER, "existing_cluster_id": "0101-000000-abcdefgh"}, "exactly one of cluster"),
    ({}, "exactly one of cluster"),
    ({"cluster": CLUSTER, "tasks": ()}, "at least one task"),
    ({"cluster": CLUSTER, "tasks": (NotebookTaskSpec("a", "/x"), NotebookTaskSpec("a", "/y"))}, "duplicate task keys"),
    ({"cluster": CLUSTER, "tasks": (NotebookTaskSpec("a", "/x", depends_on=("b",)),)}, r"unknown or itself: \['b'\]"),
    ({"cluster": CLUSTER, "tasks": (NotebookTaskSpec("a", "/x", depends_on=("a",)),)}, r"unknown or itself: \['a'\]"),
])  # fmt: skip
def test_notebook_job_refuses_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    stack = TerraformStack(CdktfTesting.app(), "unit")
    arguments: dict[str, Any] = {"tasks": (NotebookTaskSpec("a", "/x"),), **kwargs}
    with pytest.raises(ValueError, match=message):
        NotebookJob(stack, "job", NotebookJobProps(address="j", name="j", schedule=SCHEDULE, **arguments))


def test_notebook_job_alone() -> None:
    stack = TerraformStack(CdktfTesting.app(), "unit")
    NotebookJob(stack, "job", NotebookJobProps(
        address="nightly", name="nightly", schedule=SCHEDULE, cluster=CLUSTER,
        tasks=chained((NotebookTaskSpec("c", "/x"), NotebookTaskSpec("a", "/y"), NotebookTaskSpec("b", "/z"))),
    ))  # fmt: skip
    doc = json.loads(CdktfTesting.synth(stack))
    job = doc["resource"]["databricks_job"]["nightly"]
    # Run order c -> a -> b, written sorted by key.
    assert [(t["task_key"], t.get("depends_on")) for t in job["task"]] == [
        ("a", [{"task_key": "c"}]),
        ("b", [{"task_key": "a"}]),
        ("c", None),
    ]
    assert job["queue"] == {"enabled": True}
    assert job["schedule"]["pause_status"] == "PAUSED"
    assert "databricks_permissions" not in doc["resource"]


def test_no_aws_provider_import() -> None:
    for module in ("stacks/databricks.py", "constructs_lib/databricks_jobs.py", "constructs_lib/databricks_artifacts.py",
                   "platform_config/databricks.py"):  # fmt: skip
        assert "cdktf_cdktf_provider_aws" not in Path(ROOT, module).read_text()


# Every check above, on every shipped environment (tests/stacks/test_new_environment.py runs them on
# a temporary new one).
CHECKS: tuple[Check, ...] = (
    check_the_seed_addresses_and_the_access,
    check_provider_gets_the_host_and_the_audience,
    check_state_lives_in_the_environment_backend,
    check_registered_model_per_environment,
    check_model_grants_execute_to_account_users,
    check_experiment_path_and_permissions,
    check_training_tasks_sorted_by_key_run_in_order,
    check_job_names_carry_the_target,
    check_schedules_unpaused,
    check_queueing_on,
    check_batch_inference_task,
    check_jobs_run_on_their_cluster,
    check_job_settings,
    check_outputs,
    check_no_secret_in_synthesized_json,
    check_jobs_declare_their_whole_acl,
    check_notebooks_folder_access,
    check_schema_grants_of_run_as_and_plan,
)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("env", shipped_env_names())
def test_databricks_stack(synth: Synthesized, env: str, check: Check) -> None:
    check(synth, synth.env(env))


# --- the expected plan of the adoption ------------------------------------------------------------

SEED_METADATA = (
    "/Users/maaheshwarispandan97@outlook.com/.bundle/my_mlops_project_luv_v6/prod/state/metadata.json"
)
PERSON = "maaheshwarispandan97@outlook.com"
EXPERIMENT = f"/Users/{PERSON}/prod-my_mlops_project_luv_v6-experiment"
PRD_TAGS = {
    "CostCenter": "ml-prd", "Environment": "prd", "ManagedBy": "cdktf", "Owner": "mlops-platform",
    "Project": "mlopspltf", "Repository": "mlops-infra", "Stack": "databricks-prd",
}  # fmt: skip
PRD_CONTEXT = {
    "catalog": "prod",
    "env": "prod",
    "experiment_name": EXPERIMENT,
    "model_name": SEED_MODEL,
    "schema": "my_mlops_project_luv_v6",
}


def prd_changes(synth: Synthesized, seed_state: dict[str, Any]) -> list[tuple[str, str, Any, Any]]:
    return [(c.address, c.path, c.before, c.after) for c in expected_changes(seed_state, stack(synth, "prd"))]


def test_a_plan_over_the_seed_state_is_in_place_only(synth: Synthesized, seed_state: dict[str, Any]) -> None:
    """Our prd JSON against the fixture's attributes, field by field, with provider 1.99.0's
    ForceNew attributes (model name/catalog/schema/storage_location, the grants' securable, the
    permissions' object ids, the experiment's artifact_location): nothing is replaced, no name
    differs."""
    changes = expected_changes(seed_state, stack(synth, "prd"))
    assert changes and not [c for c in changes if c.replaces]
    assert name_mismatches(seed_state, stack(synth, "prd"), "my_mlops_project_luv_v6", "prod") == []


def test_what_the_first_apply_changes_besides_what_the_jobs_do(
    synth: Synthesized, seed_state: dict[str, Any]
) -> None:
    """The settings every adopted job gets (notifications, queueing, tags, retries, timeout), leaving
    the bundle (deployment and edit_mode are plain Optional in provider 1.99.0: unset removes them),
    the experiment's description (never sent to the API) and its ACL with the three principals."""
    e = synth.env("prd")
    names = e.names.databricks
    emails = {"on_failure": ["mlops-platform@example.com", "mlops-oncall@example.com"]}
    leaves = [("deployment", [{"kind": "BUNDLE", "metadata_file_path": SEED_METADATA}], None),
              ("edit_mode", "UI_LOCKED", None)]  # fmt: skip
    expected: list[tuple[str, str, Any, Any]] = []
    for job, tasks in (("batch_inference_job", 1), ("model_training_job", 4)):
        address = f"databricks_job.{job}"
        expected += [
            (address, "email_notifications", None, emails),
            (address, "queue", None, {"enabled": True}),
            (address, "tags", None, PRD_TAGS),
            *[(address, f"task[{i}].max_retries", 0, 1) for i in range(tasks)],
            (address, "timeout_seconds", 0, 14400),
            *[(address, *leave) for leave in leaves],
        ]
    expected += [
        ("databricks_mlflow_experiment.experiment", "description",
         "MLflow Experiment used to track runs for my_mlops_project_luv_v6 project.", None),
        ("databricks_permissions.mlflow_experiment_experiment", "access_control",
         [{"group_name": "users", "permission_level": "CAN_READ"}],
         [{"group_name": "users", "permission_level": "CAN_READ"},
          *sorted((sp(names.plan_principal, "CAN_READ"), sp(names.deploy_principal, "CAN_MANAGE"),
                   sp(names.run_as, "CAN_EDIT")), key=lambda a: a["service_principal_name"])]),
    ]  # fmt: skip
    behaviour = ("run_as", "notebook_path", "base_parameters")
    rest = [c for c in prd_changes(synth, seed_state) if not c[1].endswith(behaviour) and not c[1].startswith("run_as")
            and c[0] != "databricks_registered_model.model"]  # fmt: skip
    assert sorted(rest, key=str) == sorted(expected, key=str)


def prd_judged(synth: Synthesized, state: dict[str, Any]) -> tuple[list[str], list[str]]:
    e = synth.env("prd")
    changes = behaviour_changes(state, stack(synth, "prd"))
    return judge(changes, written_keys(e.settings.databricks, "databricks"), e.tfvars_file)


def test_every_change_of_what_the_prd_jobs_do_is_written_in_prd_tfvars(
    synth: Synthesized, seed_state: dict[str, Any]
) -> None:
    """Issue 24 (3): the batch job's input table stays the state's; what does change is written:
    run_as (the run-as principal, both jobs), the notebooks (the deploy principal's bundle root),
    the bundle's git_source_info dropped (batch_inference.parameters written), the model's owner;
    the run context is added to every task."""
    names = synth.env("prd").names.databricks
    intended, refused = prd_judged(synth, seed_state)
    assert refused == []
    person = {"user_name": PERSON}
    run_as = {"service_principal_name": names.run_as}
    summary = sorted(
        line.split(" (")[-1] + " | " + line.split(": ")[0] + ": " + line.split(": ")[1] for line in intended
    )
    assert summary == sorted(
        [f"written: databricks.run_as_service_principal) | databricks_job.{j}: run_as" for j in JOBS]
        + [f"written: databricks.files_root) | databricks_job.model_training_job: task[{i}].notebook_task.notebook_path"
           for i in range(4)]
        + ["written: databricks.files_root) | databricks_job.batch_inference_job: task[0].notebook_task.notebook_path",
           "written: databricks.batch_inference.parameters) | databricks_job.batch_inference_job: "
           "task[0].base_parameters.git_source_info",
           "written: databricks.model.owner) | databricks_registered_model.model: owner"]
        + [f"the run context every task gets) | databricks_job.model_training_job: task[{i}].base_parameters (run context)"
           for i in range(4)]
        + ["the run context every task gets) | databricks_job.batch_inference_job: task[0].base_parameters (run context)"]
    )  # fmt: skip
    assert f"run_as: {json.dumps(person)} -> {json.dumps(run_as)}" in "\n".join(intended)
    assert not any("input_table_name" in line for line in intended)


def _renamed(state: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    renamed: dict[str, Any] = json.loads(json.dumps(state).replace(old, new))
    return renamed


def test_finding_3_a_default_input_table_is_refused(synth: Synthesized, seed_state: dict[str, Any]) -> None:
    """Today's code wrote `<catalog>.<schema>.feature_store_inference_input` by default over the
    state's `taxi_scoring_sample`. A default that differs from the state is refused, naming the key
    to write; a value written in the file is an intended change."""
    state = _renamed(
        seed_state, '"input_table_name": "taxi_scoring_sample"', '"input_table_name": "prod.raw.taxi"'
    )
    e = synth.env("prd")
    changes = behaviour_changes(state, stack(synth, "prd"))
    written = written_keys(e.settings.databricks, "databricks")
    _, refused = judge(changes, written - {"databricks.batch_inference.input_table"}, e.tfvars_file)
    assert refused == [
        "env_specific_vars/prd.tfvars: databricks.batch_inference.input_table: not written, yet the first apply "
        'changes databricks_job.batch_inference_job: task[0].base_parameters.input_table_name: "prod.raw.taxi" -> '
        '"taxi_scoring_sample": write the adopted value to keep it, or the new one to change it on purpose'
    ]
    intended, refused = judge(changes, written, e.tfvars_file)
    assert refused == [] and any("input_table_name" in line and "written: databricks.batch_inference.input_table"
                                 in line for line in intended)  # fmt: skip


@pytest.mark.parametrize(("old", "new", "key"), [
    ("0415-213012-yi87kqjn", "0419-175415-rag0prod", "databricks.training.existing_cluster_id"),
    ('"user_name": "maaheshwarispandan97@outlook.com"', '"user_name": "other@x.io"', "databricks.run_as_service_principal"),
    ("/prod/files/rag_code_files/03", "/prod/files/rag_code_files/x03", "databricks.files_root"),
    ('"git_source_info"', '"owner_team"', "databricks.batch_inference.parameters"),
])  # fmt: skip
def test_a_change_of_what_a_job_does_needs_its_key_written(
    synth: Synthesized, seed_state: dict[str, Any], old: str, new: str, key: str
) -> None:
    """Cluster, run_as, notebook, a dropped parameter: refused when the key that makes the change
    is not written (here: taken out of prd's written keys), accepted when it is."""
    state = _renamed(seed_state, old, new)
    e = synth.env("prd")
    changes = behaviour_changes(state, stack(synth, "prd"))
    written = written_keys(e.settings.databricks, "databricks")
    unwritten = {k for k in written if k == key or k.startswith(key + ".")}
    if key == "databricks.files_root":
        unwritten.add("databricks.training.tasks")
    if key == "databricks.training.existing_cluster_id":
        unwritten.add("databricks.job_cluster")
    _, refused = judge(changes, written - unwritten, e.tfvars_file)
    assert refused and all(
        line.startswith(f"env_specific_vars/prd.tfvars: {key}: not written") for line in refused
    )
    assert judge(changes, written, e.tfvars_file)[1] == []


def test_a_state_of_another_bundle_is_refused(synth: Synthesized, seed_state: dict[str, Any]) -> None:
    """The same lineage is published elsewhere as bundle `LLMOps`: adopting that would replace the
    model (every version deleted) and rename the jobs."""
    other = _renamed(seed_state, "my_mlops_project_luv_v6", "LLMOps")
    problems = name_mismatches(other, stack(synth, "prd"), "my_mlops_project_luv_v6", "prod")
    assert problems[:2] == [
        f"databricks_job.{job}: the state is bundle 'LLMOps', target 'prod'; this environment is project "
        "'my_mlops_project_luv_v6', target 'prod'"
        for job in ("batch_inference_job", "model_training_job")
    ]
    replaced = {c.path for c in expected_changes(other, stack(synth, "prd")) if c.replaces}
    assert replaced == {"name", "schema_name"}
    assert any("databricks_registered_model.model: name" in p and "REPLACES" in p for p in problems)


@pytest.mark.parametrize(("old", "new", "what"), [
    ("01-PDF-Advance-Data-Preprocessing", "PDF_Advance_Data_Preprocessing", "task_key"),
    ("prod-my_mlops_project_luv_v6-batch-inference-job", "my_mlops_project_luv_v6-batch-inference-job", "name"),
])  # fmt: skip
def test_an_in_place_rename_of_the_deployment_is_refused(
    synth: Synthesized, seed_state: dict[str, Any], old: str, new: str, what: str
) -> None:
    problems = name_mismatches(
        _renamed(seed_state, old, new), stack(synth, "prd"), "my_mlops_project_luv_v6", "prod"
    )
    assert problems and all(what in p for p in problems)


def test_the_workspace_prefix_alone_is_no_change_of_notebook(
    synth: Synthesized, seed_state: dict[str, Any]
) -> None:
    """A bundle from CLI 0.230 on writes /Workspace/Users/...: the same notebooks."""
    state = _renamed(seed_state, '"/Users/maaheshwarispandan97@outlook.com/.bundle/',
                     f'"/Users/{synth.env("prd").settings.databricks.deploy_principal}/.bundle/')  # fmt: skip
    assert not [c for c in behaviour_changes(state, stack(synth, "prd")) if "notebook_path" in c.what]
