"""Two environments never share a Databricks target: it names their catalog, experiment and jobs."""

from __future__ import annotations

from platform_config.loader import TFVARS_DIR
from tests.conftest import scratch_env_name
from tests.fixtures.envs import FIXTURES, ConfigFiles, add_environment

PRD = f"{TFVARS_DIR}/prd.tfvars"


def test_a_shared_explicit_target_is_a_load_error_in_the_second_file() -> None:
    problems = ConfigFiles(FIXTURES).set(PRD, "databricks.target", "test").problems()
    assert [str(p) for p in problems] == [
        f"{PRD}: databricks.target: 'test' is also the target of environment 'dev' "
        f"({TFVARS_DIR}/dev.tfvars): each environment needs its own (e.g. 'prd')"
    ]


def test_a_default_target_counts_too() -> None:
    # The fixture's dev sets no target: it is dev's default, "test".
    new = scratch_env_name(FIXTURES)
    files = add_environment(ConfigFiles(FIXTURES), new, 40).set(
        f"{TFVARS_DIR}/{new}.tfvars", "databricks.target", "test"
    )
    [problem] = files.problems()
    assert (problem.file, problem.key) == (f"{TFVARS_DIR}/{new}.tfvars", "databricks.target")
    assert "also the target of environment 'dev'" in problem.message


def test_distinct_targets_load() -> None:
    new = scratch_env_name(FIXTURES)
    envs = add_environment(ConfigFiles(FIXTURES), new, 40).load()
    assert sorted(e.names.databricks.target for e in envs) == sorted(["prod", new, "test"])
