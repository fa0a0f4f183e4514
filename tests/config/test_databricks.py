"""The ``databricks`` block: defaults, derived names, and one failing test per validation.

Everything goes through the real loader (``load_environments``) with the test-owned environments'
databricks block replaced, and asserts the "file: key: problem" the user would see.
"""

from __future__ import annotations

from typing import Any

import pytest

from platform_config import naming
from platform_config.databricks import DatabricksSettings, quartz_cron_problem
from platform_config.errors import ConfigError
from platform_config.loader import Environment
from tests.conftest import shipped_env_names
from tests.fixtures.databricks_env import BASE, databricks_problems, load_variants, problems_for
from tests.fixtures.envs import FIXTURES


def block(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def only_problem(problems: list[tuple[str, str]]) -> tuple[str, str]:
    assert len(problems) == 1, problems
    return problems[0]


# --- shipped environments ------------------------------------------------------------------------


@pytest.mark.parametrize("name", shipped_env_names())
def test_a_shipped_target_equals_the_naming_default(repo_envs: list[Environment], name: str) -> None:
    env = next(e for e in repo_envs if e.name == name)
    assert env.names.databricks.target == naming.databricks_target(name)


@pytest.mark.parametrize("name", shipped_env_names())
def test_a_variant_with_the_same_block_loads_the_same_settings(
    repo_envs: list[Environment], name: str
) -> None:
    """load_variants (used by the stack tests) rewrites the file: it must change only the block."""
    env = next(e for e in repo_envs if e.name == name)
    block = env.settings.databricks.model_dump(by_alias=True, exclude_unset=True)
    (variant,) = load_variants({name: (block, name)})
    assert variant.settings == env.settings


# --- defaults ------------------------------------------------------------------------------------


def fixture_variant(b: dict[str, Any]) -> Environment:
    (env,) = load_variants({"dev": (b, "dev")}, root=FIXTURES)
    return env


def test_minimal_block_loads_with_the_template_defaults() -> None:
    env = fixture_variant(block())
    s = env.settings.databricks
    assert s.target is None and s.catalog is None and s.schema_name is None
    assert s.training.layout == "template"
    assert s.training.schedule.cron == "0 0 9 * * ?" and s.training.schedule.timezone == "UTC"
    assert s.batch_inference.schedule.cron == "0 0 11 * * ?"
    assert s.job_cluster.spark_version == "15.4.x-cpu-ml-scala2.12"  # LTS
    assert s.job_cluster.num_workers == 3 and s.job_cluster.data_security_mode == "SINGLE_USER"
    assert s.model_execute_principals == ("account users",)
    assert s.experiment_read_groups == ("users",)
    assert s.job_view_groups == ("users",)  # the template's CAN_VIEW
    assert s.batch_inference.input_table == "taxi_scoring_sample"  # the template's, without feature store
    assert s.batch_inference.parameters == {} and s.job_owner is None and s.model.owner is None
    assert s.pause_schedules is False and s.training.schedule.paused is None
    assert (s.max_retries, s.timeout_seconds, s.max_concurrent_runs) == (0, 0, 1)


def test_minimal_block_resolves_the_bundle_names() -> None:
    names = fixture_variant(block()).names.databricks
    project = BASE["project"]
    assert (names.target, names.catalog, names.schema) == ("test", "test", project)
    assert names.model_full_name == f"test.{project}.{project}-model"
    assert names.experiment_path == f"/Users/deployer@example.com/test-{project}-experiment"
    assert names.files_root == f"/Workspace/Users/deployer@example.com/.bundle/{project}/test/files"
    assert names.training_job_name == f"test-{project}-model-training-job"
    assert names.batch_output_table == f"test.{project}.predictions"
    assert names.batch_input_table == "taxi_scoring_sample"
    # Owners: the deploy principal owns the jobs, the run-as principal the model.
    assert (names.job_owner, names.model_owner) == (
        BASE["deploy_principal"],
        BASE["run_as_service_principal"],
    )
    assert (names.run_as, names.plan_principal) == (BASE["run_as_service_principal"], BASE["plan_principal"])
    assert names.oidc_audience == BASE["oidc_audience"]
    assert names.bundle_roots == (f"/Users/deployer@example.com/.bundle/{project}/test",)
    # Unpaused: only a bundle's development mode pauses schedules.
    assert not names.training_schedule_paused and not names.batch_inference_schedule_paused


@pytest.mark.parametrize(("cloud", "host", "node_type"), [
    ("azure", "https://adb-1234567890123456.7.azuredatabricks.net", "Standard_D3_v2"),
    ("aws", "https://dbc-a1b2c3d4-e5f6.cloud.databricks.com", "i3.xlarge"),
    ("gcp", "https://1234567890123456.7.gcp.databricks.com", "n2-highmem-4"),
])  # fmt: skip
def test_each_cloud_picks_its_node_type(cloud: str, host: str, node_type: str) -> None:
    assert fixture_variant(block(cloud=cloud, host=host)).names.databricks.node_type_id == node_type


def test_a_node_type_that_is_set_wins() -> None:
    env = fixture_variant(block(job_cluster={"node_type_id": "Standard_E4ds_v5"}))
    assert env.names.databricks.node_type_id == "Standard_E4ds_v5"


def test_schema_is_spelled_schema_in_the_file() -> None:
    env = fixture_variant(block(schema="features"))
    assert env.settings.databricks.schema_name == "features"
    assert env.names.databricks.schema == "features"


def test_deployer_is_optional_when_both_paths_are_given() -> None:
    b = {k: v for k, v in block().items() if k != "deployer"}
    b.update(experiment_path="/Shared/exp", files_root="/Workspace/Shared/project/files")
    assert databricks_problems(b) == []
    names = fixture_variant(b).names.databricks
    assert (names.experiment_path, names.files_root) == ("/Shared/exp", "/Workspace/Shared/project/files")


def test_settings_object_is_frozen() -> None:
    env = fixture_variant(block())
    with pytest.raises(ValueError, match="frozen"):
        env.settings.databricks.cloud = "aws"  # type: ignore[misc]
    assert isinstance(env.settings.databricks, DatabricksSettings)


# --- bad input: one test per rule ----------------------------------------------------------------


@pytest.mark.parametrize(
    "missing",
    ["host", "project", "deploy_principal", "plan_principal", "run_as_service_principal", "oidc_audience"],
)
def test_required_keys(missing: str) -> None:
    b = {k: v for k, v in block().items() if k != missing}
    assert only_problem(databricks_problems(b)) == (f"databricks.{missing}", "missing required key")


def test_without_deployer_the_deploy_principal_deploys_the_files() -> None:
    b = {k: v for k, v in block().items() if k != "deployer"}
    assert databricks_problems(b) == []
    names = fixture_variant(b).names.databricks
    sp, project = BASE["deploy_principal"], BASE["project"]
    assert names.files_root == f"/Workspace/Users/{sp}/.bundle/{project}/test/files"
    assert names.experiment_path == f"/Users/{sp}/test-{project}-experiment"
    assert names.bundle_roots == (f"/Users/{sp}/.bundle/{project}/test",)


def test_a_files_root_in_another_bundle_is_checked_too() -> None:
    """prd's case: the state is under the person who deployed, the notebooks move to the service
    principal's bundle: a first apply looks for the bundle's state in both."""
    other = f"/Workspace/Users/{BASE['deploy_principal']}/.bundle/p/test/files"
    names = fixture_variant(block(files_root=other)).names.databricks
    assert names.bundle_roots == (
        f"/Users/deployer@example.com/.bundle/{BASE['project']}/test",
        f"/Users/{BASE['deploy_principal']}/.bundle/p/test",
    )


def test_problem_names_the_file_and_full_key() -> None:
    (problem,) = [p for p in problems_for(block(cloud="azur")) if p.key.startswith("databricks")]
    assert problem.file == "env_specific_vars/dev.tfvars"
    assert str(problem).startswith("env_specific_vars/dev.tfvars: databricks.cloud: ")


def test_unknown_cloud() -> None:
    key, message = only_problem(databricks_problems(block(cloud="azur")))
    assert key == "databricks.cloud"
    assert "'azure', 'aws' or 'gcp'" in message and "'azur'" in message


def test_host_must_match_cloud() -> None:
    key, message = only_problem(databricks_problems(block(cloud="aws")))
    assert key == "databricks.host" and message.endswith("is a workspace on azure, but cloud = 'aws'")


@pytest.mark.parametrize("host", [
    "http://adb-1.azuredatabricks.net",
    "https://adb-1.azuredatabricks.net/?o=123",
    "adb-1.azuredatabricks.net",
    "https://adb-1.azuredatabricks.net/api/2.0",
])  # fmt: skip
def test_host_must_be_a_bare_https_url(host: str) -> None:
    key, message = only_problem(databricks_problems(block(host=host)))
    assert key == "databricks.host" and "is not a workspace URL" in message


def test_unknown_key_is_reported() -> None:
    key, message = only_problem(databricks_problems(block(projet="x")))
    assert key == "databricks.projet" and message.startswith("unknown key")


@pytest.mark.parametrize(("cron", "expected"), [
    ("0 9 * * *", "has 5 fields"),
    ("0 0 9 * * ? 2030 1", "has 8 fields"),
    ("0 0 25 * * ?", "hours field '25': 25 is outside 0-23"),
    ("0 60 9 * * ?", "minutes field '60': 60 is outside 0-59"),
    ("0 0 9 * * *", "exactly one of day-of-month and day-of-week must be '?'"),
    ("0 0 9 ? * ?", "exactly one of day-of-month and day-of-week must be '?'"),
    ("0 ? 9 * * ?", "'?' is only allowed for day-of-month or day-of-week"),
    ("0 0 9 ? * FUNDAY", "is not a number or name"),
    ("0 0 9 ? FOO MON", "'FOO' is not a number or name"),
    ("0 0 17-9 * * ?", "runs backwards"),
    ("0 0/0 9 * * ?", "bad increment"),
    ("0 0 9,,10 * * ?", "empty list item"),
    ("0 0 9 ? * XYZ#2", "unknown day 'XYZ'"),
    ("0 0 1-2-3 * * ?", "bad range '1-2-3'"),
    ("0 0 9 32W * ?", "is not a number or name"),
])  # fmt: skip
def test_invalid_cron_is_a_config_error(cron: str, expected: str) -> None:
    key, message = only_problem(databricks_problems(block(training={"schedule": {"cron": cron}})))
    assert key == "databricks.training.schedule.cron"
    assert "is not a Quartz cron expression" in message and expected in message


def test_unix_cron_gets_a_hint() -> None:
    problem = quartz_cron_problem("0 9 * * *")
    assert problem is not None and "looks like Unix cron" in problem


@pytest.mark.parametrize("cron", [
    "0 0 9 * * ?", "0 0 11 * * ?", "0 30 6 ? * MON-FRI", "0 0/15 * * * ?", "0 0 12 L * ?",
    "0 0 12 15W * ?", "0 0 12 ? * 6#3", "0 0 12 ? * 2L", "0 0 0 1 JAN,JUL ? 2030", "0 0 9 LW * ?",
    "15,45 0 9-17/2 * * ?",
])  # fmt: skip
def test_valid_quartz_cron(cron: str) -> None:
    assert quartz_cron_problem(cron) is None


def test_invalid_timezone() -> None:
    key, message = only_problem(
        databricks_problems(
            block(batch_inference={"schedule": {"cron": "0 0 11 * * ?", "timezone": "Mars/Olympus"}})
        )
    )
    assert key == "databricks.batch_inference.schedule.timezone" and "is not a time zone id" in message


RAG = [
    {"key": "prep", "notebook": "rag/01-prep"},
    {"key": "chain", "notebook": "rag/02-chain"},
    {"key": "prep", "notebook": "rag/03-eval"},
]


def test_duplicate_task_keys() -> None:
    key, message = only_problem(databricks_problems(block(training={"layout": "notebooks", "tasks": RAG})))
    assert key == "databricks.training.tasks[2].key"
    assert message == "duplicate task key 'prep' (also training.tasks[0])"


def test_notebook_layout_needs_tasks() -> None:
    key, message = only_problem(databricks_problems(block(training={"layout": "notebooks"})))
    assert key == "databricks.training.tasks" and "needs at least one task" in message


def test_template_layout_refuses_tasks() -> None:
    key, message = only_problem(databricks_problems(block(training={"tasks": RAG[:2]})))
    assert key == "databricks.training.tasks" and "only used with layout" in message


def test_unknown_layout() -> None:
    key, _ = only_problem(databricks_problems(block(training={"layout": "free"})))
    assert key == "databricks.training.layout"


@pytest.mark.parametrize(("task", "key", "expected"), [
    ({"key": "bad key!", "notebook": "a/b"}, "key", "a Databricks task key"),
    ({"key": "ok", "notebook": "training/Train.py"}, "notebook", "have no file extension"),
    ({"key": "ok", "notebook": "../outside/nb"}, "notebook", "is not a notebook path"),
    ({"key": "ok", "notebook": "a/b", "cluster": "x"}, "cluster", "unknown key"),
])  # fmt: skip
def test_bad_tasks(task: dict[str, str], key: str, expected: str) -> None:
    k, message = only_problem(databricks_problems(block(training={"layout": "notebooks", "tasks": [task]})))
    assert k == f"databricks.training.tasks[0].{key}" and expected in message


@pytest.mark.parametrize(("changes", "key", "expected"), [
    ({"training": {"existing_cluster_id": "my-cluster"}}, "training.existing_cluster_id", "is not a cluster id"),
    ({"job_cluster": {"spark_version": "15.3.x-scala2.12"}}, "job_cluster.spark_version", "ML runtime"),
    ({"job_cluster": {"node_type_id": "i3.xlarge"}}, "job_cluster.node_type_id", "is not a node type on azure"),
    ({"job_cluster": {"num_workers": -1}}, "job_cluster.num_workers", "greater than or equal to 0"),
    ({"job_cluster": {"data_security_mode": "NONE"}}, "job_cluster.data_security_mode", "SINGLE_USER"),
    ({"model": {"storage_location": "s3://bucket/models"}}, "model.storage_location", "abfss://"),
    ({"notifications": {"on_failure": ["not-an-email"]}}, "notifications.on_failure[0]", "is not an e-mail"),
    ({"run_as_service_principal": "ci-bot"}, "run_as_service_principal", "application id"),
    ({"deployer": "someone"}, "deployer", "user e-mail or a service principal"),
    ({"experiment_path": "Users/x/exp"}, "experiment_path", "absolute workspace path"),
    ({"files_root": "/Workspace/x/"}, "files_root", "absolute workspace path"),
    ({"batch_inference": {"output_table": "a.b.c.predictions"}}, "batch_inference.output_table", "a table name"),
    ({"batch_inference": {"input_table": "raw table"}}, "batch_inference.input_table", "a table name"),
    ({"deploy_principal": "ci-bot"}, "deploy_principal", "application id"),
    ({"plan_principal": "planner@example.com"}, "plan_principal", "application id"),
    ({"job_owner": "someone"}, "job_owner", "user e-mail or a service principal"),
    ({"oidc_audience": "my audience"}, "oidc_audience", "without spaces"),
    ({"oidc_audience": ""}, "oidc_audience", "1-255 characters"),
    ({"project": "My Project"}, "project", "lowercase letters"),
    ({"model_name": "my model"}, "model_name", "should match pattern"),
    ({"job_name_prefix": "dev/"}, "job_name_prefix", "should match pattern"),
    ({"catalog": "prod-catalog"}, "catalog", "Unity Catalog identifier"),
    ({"target": "prod"}, "target", "production target"),
    ({"model_execute_principals": []}, "model_execute_principals", "at least 1"),
    ({"experiment_read_groups": []}, "experiment_read_groups", "at least 1"),
    ({"max_retries": -2}, "max_retries", "greater than or equal to -1"),
    ({"max_concurrent_runs": 0}, "max_concurrent_runs", "greater than or equal to 1"),
    ({"timeout_seconds": -5}, "timeout_seconds", "greater than or equal to 0"),
    ({"job_permissions": False}, "job_permissions", "unknown key"),
    ({"tags": {"bad{key}": "x"}}, "tags.bad{key}", "tag keys"),
    ({"training": {"validation": {"run_mode": "strict"}}}, "training.validation.run_mode", "'dry_run'"),
])  # fmt: skip
def test_bad_values(changes: dict[str, Any], key: str, expected: str) -> None:
    k, message = only_problem(databricks_problems(block(**changes)))
    assert k == f"databricks.{key}"
    assert expected in message


@pytest.mark.parametrize(("changes", "key", "expected"), [
    (
        {"training": {"layout": "notebooks", "tasks": RAG[:2], "training_data_path": "/x"}},
        "training.training_data_path",
        'only used with layout = "template"',
    ),
    (
        {"training": {"layout": "notebooks", "tasks": RAG[:2], "validation": {"run_mode": "enabled"}}},
        "training.validation",
        'only used with layout = "template"',
    ),
    (
        {
            "training": {"existing_cluster_id": "0101-000000-abcdefgh"},
            "batch_inference": {"existing_cluster_id": "0101-000000-abcdefgh"},
            "job_cluster": {"num_workers": 1},
        },
        "job_cluster",
        "both jobs set existing_cluster_id",
    ),
])  # fmt: skip
def test_settings_that_would_do_nothing(changes: dict[str, Any], key: str, expected: str) -> None:
    k, message = only_problem(databricks_problems(block(**changes)))
    assert k == f"databricks.{key}" and expected in message


@pytest.mark.parametrize("cluster_id", [
    "0415-213012-yi87kqjn",  # the seed project's
    "1234-567890-reef123",  # the API reference's example: a 7-character suffix
    "0923-164208-meows279",
    "0727-054928-41plse7n",  # suffix starting with a digit
    "0101-000000-abcdefghijk",
])  # fmt: skip
def test_every_cluster_id_format_the_api_returns(cluster_id: str) -> None:
    assert databricks_problems(block(training={"existing_cluster_id": cluster_id})) == []


@pytest.mark.parametrize(
    "cluster_id", ["0415-213012-", "415-213012-abc", "0415-213012-ABCDEF", "0415-213012-ab cd"]
)
def test_malformed_cluster_ids(cluster_id: str) -> None:
    key, message = only_problem(databricks_problems(block(training={"existing_cluster_id": cluster_id})))
    assert key == "databricks.training.existing_cluster_id" and "MMDD-HHMMSS-suffix" in message


def test_a_task_cannot_redefine_the_run_context() -> None:
    tasks = [{"key": "a", "notebook": "nb/a", "parameters": {"catalog": "prod", "source": "pdfs"}}]
    key, message = only_problem(databricks_problems(block(training={"layout": "notebooks", "tasks": tasks})))
    assert key == "databricks.training.tasks[0].parameters.catalog"
    assert "set from the environment for every task" in message


def test_the_batch_task_cannot_redefine_its_context_or_tables() -> None:
    problems = databricks_problems(
        block(
            batch_inference={"parameters": {"env": "prod", "input_table_name": "x", "git_source_info": "y"}}
        )
    )
    assert [k for k, _ in problems] == [
        "databricks.batch_inference.parameters.env",
        "databricks.batch_inference.parameters.input_table_name",
    ]
    assert all("set from the environment" in m for _, m in problems)


@pytest.mark.parametrize("other", ["deploy_principal", "run_as_service_principal"])
def test_the_plan_principal_is_its_own(other: str) -> None:
    key, message = only_problem(databricks_problems(block(plan_principal=BASE[other].upper())))
    assert key == "databricks.plan_principal"
    assert message == f"is also {other}: the plan identity must be a read-only principal of its own"


def test_run_as_may_be_the_deploy_principal() -> None:
    assert databricks_problems(block(run_as_service_principal=BASE["deploy_principal"])) == []


def test_prod_target_is_fine_in_production() -> None:
    assert databricks_problems(block(target="prod"), base_env="prd", is_production=True) == []


def test_secrets_are_refused_in_the_block() -> None:
    fake_token = "dapi" + "0123456789abcdef" * 2  # assembled: no token-shaped literal in the repo
    problems = problems_for(block(token=fake_token))
    assert [(p.key, "secrets never go in tfvars" in p.message) for p in problems] == [
        ("databricks.token", True)
    ]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as exc:
        fixture_variant(block(cloud="gcpx", max_retries=-9, training={"layout": "x"}))
    keys = {p.key for p in exc.value.problems}
    assert {"databricks.cloud", "databricks.max_retries", "databricks.training.layout"} <= keys


# --- names ---------------------------------------------------------------------------------------


def test_databricks_names() -> None:
    assert [naming.databricks_target(e) for e in ("dev", "tst", "prd", "qa")] == [
        "test",
        "staging",
        "prod",
        "qa",
    ]
    assert naming.databricks_model_name("p") == "p-model"
    assert naming.databricks_model_full_name("prod", "p", "p-model") == "prod.p.p-model"
    assert naming.databricks_experiment_path("u@x.io", "test", "p") == "/Users/u@x.io/test-p-experiment"
    assert (
        naming.databricks_files_root("u@x.io", "p", "staging")
        == "/Workspace/Users/u@x.io/.bundle/p/staging/files"
    )
    assert naming.databricks_bundle_root("u@x.io", "p", "test") == "/Users/u@x.io/.bundle/p/test"
    assert naming.databricks_state_dir("/Users/u/.bundle/p/test") == "/Users/u/.bundle/p/test/state"
    assert naming.bundle_root_of_files("/Workspace/Users/u/.bundle/p/test/files") == "/Users/u/.bundle/p/test"
    assert naming.bundle_root_of_files("/Users/u/.bundle/p/test/files") == "/Users/u/.bundle/p/test"
    assert naming.bundle_root_of_files("/Workspace/Shared/p/files") is None
    assert naming.databricks_job_prefix("test") == "test-"
    assert naming.databricks_job_prefix("prod") == "prod-"  # production too, as the template
    assert (
        naming.databricks_job_name("test-", "p", naming.DATABRICKS_TRAINING_JOB)
        == "test-p-model-training-job"
    )
    assert naming.databricks_predictions_table("c", "s") == "c.s.predictions"
