"""The ``mlflow = { ... }`` block: accepted values, and problems reported as ``file: key: problem``."""

from __future__ import annotations

import re
from typing import Any

import pytest

from platform_config import advisories, sizing
from platform_config.loader import TFVARS_DIR
from platform_config.mlflow import DatabaseSettings, MlflowSettings, ServerSettings
from tests.conftest import load_repo_environments
from tests.fixtures.envs import FIXTURES, ConfigFiles, parse

PRD = f"{TFVARS_DIR}/prd.tfvars"
DEV = f"{TFVARS_DIR}/dev.tfvars"


def only_problem(file: str, key: str, value: Any) -> str:
    """The one problem, as printed, of the test-owned environments with ``mlflow.<key>`` changed."""
    problems = ConfigFiles(FIXTURES).set(file, f"mlflow.{key}", value).problems()
    assert len(problems) == 1, problems
    return str(problems[0])


def test_defaults_are_private_and_valid() -> None:
    settings = MlflowSettings()
    assert settings.load_balancer.ingress_cidrs == ("10.0.0.0/8",)
    assert settings.cache.enabled is False


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("database.multi_az", False, "mlflow.database.multi_az: must be true in a production environment"),
    ("database.deletion_protection", False, "mlflow.database.deletion_protection: must be true"),
    ("database.performance_insights", False, "mlflow.database.performance_insights: must be true"),
    ("load_balancer.deletion_protection", False, "mlflow.load_balancer.deletion_protection: must be true"),
    ("database.monitoring_interval", 0, "mlflow.database.monitoring_interval: enhanced monitoring must be on"),
    ("database.backup_retention_days", 3, "mlflow.database.backup_retention_days: must be at least 7 in production"),
    ("server.min_size", 1, "mlflow.server.min_size: must be at least 2 in production"),
    ("alerts.emails", [], "mlflow.alerts.emails: production alerts need at least one recipient"),
    ("cache.num_nodes", 1, "mlflow.cache.num_nodes: must be at least 2 in production"),
    ("log_retention_days", 90, "mlflow.log_retention_days: must be at least 365 in production"),
])  # fmt: skip
def test_production_requires_hardening(key: str, value: Any, problem: str) -> None:
    assert only_problem(PRD, key, value).startswith(f"{PRD}: {problem}")


@pytest.mark.parametrize("env", ["dev", "prd"])
def test_every_environment_serves_https(env: str) -> None:
    """Sign-in sends passwords: an existing certificate or a hosted zone, in every environment."""
    path = f"{TFVARS_DIR}/{env}.tfvars"
    files = ConfigFiles(FIXTURES)
    for key in ("certificate_arn", "hosted_zone_id", "host_name"):
        if key in parse(files.tfvars[path])["mlflow"].get("load_balancer", {}):
            files.delete(path, f"mlflow.load_balancer.{key}")
    assert [str(p) for p in files.problems()] == [
        f"{path}: mlflow.load_balancer.certificate_arn: missing: sign-in needs HTTPS in every environment; "
        "set certificate_arn (an existing ACM certificate) or hosted_zone_id and host_name (the stack "
        "creates the certificate)"
    ]


@pytest.mark.parametrize(
    ("change", "key", "says"),
    [
        (
            {"hosted_zone_id": "Z04518362KQ8ZPXQ3H7TW"},
            "hosted_zone_id",
            "set together with certificate_arn: choose one",
        ),
        ({"host_name": "mlflow.acme.io"}, "host_name", "only used with hosted_zone_id"),
    ],
)
def test_one_way_to_the_certificate(change: dict[str, str], key: str, says: str) -> None:
    files = ConfigFiles(FIXTURES)
    for k, v in change.items():
        files.set(PRD, f"mlflow.load_balancer.{k}", v)
    found = [str(p) for p in files.problems()]
    assert any(p.startswith(f"{PRD}: mlflow.load_balancer.{key}: {says}") for p in found), found


@pytest.mark.parametrize(
    ("lb", "key", "says"),
    [
        ({"hosted_zone_id": "Z04518362KQ8ZPXQ3H7TW"}, "host_name", "missing: hosted_zone_id needs the name"),
        (
            {"hosted_zone_id": "Z04518362KQ8ZPXQ3H7TW", "host_name": "*.acme.io"},
            "host_name",
            "a wildcard cannot",
        ),
        (
            {"hosted_zone_id": "z-lower", "host_name": "mlflow.acme.io"},
            "hosted_zone_id",
            "String should match pattern",
        ),
    ],
)
def test_the_zone_needs_one_host(lb: dict[str, str], key: str, says: str) -> None:
    files = ConfigFiles(FIXTURES).set(DEV, "mlflow.load_balancer", lb)
    found = [str(p) for p in files.problems()]
    assert any(p.startswith(f"{DEV}: mlflow.load_balancer.{key}: {says}") for p in found), found


def test_sign_in_settings() -> None:
    prd = next(e for e in ConfigFiles(FIXTURES).load() if e.name == "prd")
    assert prd.settings.mlflow.auth.default_permission == "NO_PERMISSIONS"
    assert only_problem(PRD, "auth.default_permission", "ALL").startswith(
        f"{PRD}: mlflow.auth.default_permission: Input should be 'READ', 'USE', 'EDIT', 'MANAGE' or 'NO_PERMISSIONS'"
    )
    assert only_problem(PRD, "auth.admin_username", "a b").startswith(
        f"{PRD}: mlflow.auth.admin_username: String should match pattern"
    )
    # Nothing by default in production.
    assert [
        str(p) for p in ConfigFiles(FIXTURES).set(PRD, "mlflow.auth.default_permission", "READ").problems()
    ] == [
        f"{PRD}: mlflow.auth.default_permission: must be NO_PERMISSIONS in production: nobody reads an "
        "experiment or model unless granted"
    ]


def test_a_disabled_cache_needs_no_failover_in_production() -> None:
    f = ConfigFiles(FIXTURES).set(PRD, "mlflow.cache", {"enabled": False, "num_nodes": 1})
    assert next(e for e in f.load() if e.name == "prd").settings.mlflow.cache.num_nodes == 1


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("server.instance_typo", "t3.medium", "mlflow.server.instance_typo: unknown key"),
    ("load_balancer.ingress_cidrs", ["203.0.113.0/33"],
     "mlflow.load_balancer.ingress_cidrs[0]: '203.0.113.0/33' is not a valid CIDR block"),
    ("load_balancer.ingress_cidrs", [], "mlflow.load_balancer.ingress_cidrs: Tuple should have at least 1 item"),
    ("alerts.emails", ["not-an-address"], "mlflow.alerts.emails[0]: 'not-an-address' is not an e-mail address"),
    ("database.performance_insights", True, "mlflow.database: performance_insights is not available on db.t3.micro"),
    ("server.max_size", 0, "mlflow.server.max_size: Input should be greater than or equal to 1"),
    ("server.desired_capacity", 5, "mlflow.server: needs min_size <= desired_capacity <= max_size"),
    ("log_retention_days", 31, "mlflow.log_retention_days: 31 is not a CloudWatch retention period"),
    ("mlflow_version", "3.5.0", "mlflow: mlflow_version 3.5.0 is not the release the shipped constraints pin"),
    ("server.ami_id", "ami-latest", "mlflow.server.ami_id: String should match pattern"),
    ("database.monitoring_interval", 7,
     "mlflow.database.monitoring_interval: Input should be 0, 1, 5, 10, 15, 30 or 60"),
    ("database.log_exports", ["audit"],
     "mlflow.database.log_exports[0]: Input should be 'error', 'general' or 'slowquery'"),
    ("database.log_exports", ["error", "error"], "mlflow.database: log_exports lists a log twice"),
    ("database.max_allocated_storage_gb", 10,
     "mlflow.database.max_allocated_storage_gb: Input should be greater than or equal to 20"),
    ("server.instance_type", "m7g.large",
     "mlflow.server.instance_type: 'm7g.large' is not in the instance memory table (platform_config/sizing.py"),
    ("db_password", "hunter2hunter2", "mlflow.db_password: looks like a secret"),
    ("database.engine_version", "5.7", "mlflow.database.engine_version: '5.7' is not a supported MySQL version: "
     "8.4 or 8.4.x (e.g. 8.4.5); 8.0 or 8.0.x only for an existing database until its upgrade "
     "(docs/runbooks/mysql-major-upgrade.md)"),
    ("database.engine_version", "8.1", "mlflow.database.engine_version: '8.1' is not a supported MySQL version"),
    ("database.engine_version", "9.0", "mlflow.database.engine_version: '9.0' is not a supported MySQL version"),
    ("database.engine_version", "8.4.x", "mlflow.database.engine_version: '8.4.x' is not a supported MySQL"),
    ("database.engine_version", 8, "mlflow.database.engine_version: Input should be a valid string"),
    ("database.engine_lifecycle_support", "open-source-rds-standard-support",
     "mlflow.database.engine_lifecycle_support: Input should be 'open-source-rds-extended-support' or "
     "'open-source-rds-extended-support-disabled'"),
    ("database.restore_from_snapshot", "pre--mlflow", "mlflow.database.restore_from_snapshot: String should match pattern"),
    ("database.restore_from_snapshot", "9-pre-mlflow", "mlflow.database.restore_from_snapshot: String should match pattern"),
])  # fmt: skip
def test_bad_values_are_reported_with_file_and_key(key: str, value: Any, problem: str) -> None:
    assert only_problem(DEV, key, value).startswith(f"{DEV}: {problem}")


def test_certificate_arn_must_be_an_acm_arn() -> None:
    arn = "arn:aws:iam::111122223333:server-certificate/x"
    assert only_problem(PRD, "load_balancer.certificate_arn", arn).startswith(
        f"{PRD}: mlflow.load_balancer.certificate_arn: String should match pattern"
    )


def test_a_certificate_needs_a_custom_host() -> None:
    problems = ConfigFiles(FIXTURES).delete(PRD, "mlflow.server.allowed_hosts").problems()
    assert [str(p) for p in problems] == [
        f"{PRD}: mlflow.server.allowed_hosts: needs the custom host name(s) the certificate covers "
        "(e.g. mlflow.example.org): with certificate_arn set, users cannot use the load balancer's own name"
    ]


@pytest.mark.parametrize(("account", "arn", "problem"), [
    (None, "arn:aws:acm:eu-west-1:111122223333:certificate/11111111-1111-1111-1111-111111111111",
     "is a certificate in eu-west-1; the load balancer is in aws_region = 'us-east-1'"),
    ("444455556666", "arn:aws:acm:us-east-1:111122223333:certificate/11111111-1111-1111-1111-111111111111",
     "belongs to account 111122223333; aws_account_id = '444455556666'"),
])  # fmt: skip
def test_certificates_belong_to_the_environments_region_and_account(
    account: str | None, arn: str, problem: str
) -> None:
    files = ConfigFiles(FIXTURES).set(PRD, "mlflow.load_balancer.certificate_arn", arn)
    if account is not None:
        files = files.set(PRD, "aws_account_id", account)
    assert [str(p) for p in files.problems()] == [f"{PRD}: mlflow.load_balancer.certificate_arn: {problem}"]


def test_the_ami_is_pinned() -> None:
    problems = ConfigFiles(FIXTURES).delete(DEV, "mlflow.server.ami_id").problems()
    assert [str(p) for p in problems] == [
        f"{DEV}: mlflow.server.ami_id: missing: pin the Amazon Linux 2023 AMI of aws_region "
        "(docs/stacks/mlflow.md, Bumping the AMI)"
    ]


def test_cache_nodes_are_at_most_two_per_zone() -> None:
    # One worker: with the cache on, the job queue leaves the fixture's t3.medium room for no more.
    files = ConfigFiles(FIXTURES).set(DEV, "mlflow.server.workers", 1)
    problems = files.set(DEV, "mlflow.cache", {"enabled": True, "num_nodes": 5}).problems()
    assert [str(p) for p in problems] == [
        f"{DEV}: mlflow.cache.num_nodes: more nodes than two per availability zone"
    ]


def test_the_job_queue_takes_its_share_of_the_instance() -> None:
    files = ConfigFiles(FIXTURES).set(DEV, "mlflow.server.workers", 2).set(DEV, "mlflow.cache.enabled", True)
    assert [str(p) for p in files.problems()] == [
        f"{DEV}: mlflow.server.workers: workers = 2 needs an estimated 2110 MiB at rest (220 MiB base + "
        "2 x 230 MiB per worker + 1430 MiB for the job queue, which cache.enabled turns on), more than "
        "half of t3.medium's 4096 MiB (2048 MiB): 1 is the most that fits; or choose a larger instance_type"
    ]


def dev_with(mlflow: dict[str, Any]) -> ConfigFiles:
    """The test-owned dev environment with the given ``mlflow.<key>`` values."""
    files = ConfigFiles(FIXTURES)
    for key, value in mlflow.items():
        files.set(DEV, f"mlflow.{key}", value)
    return files


@pytest.mark.parametrize("cache", [False, True])
def test_the_most_workers_that_fit_is_exact(cache: bool) -> None:
    (problem,) = dev_with({"cache.enabled": cache, "server.workers": 64}).problems()
    found = re.search(r"(\d+) is the most that fits", str(problem))
    assert problem.key == "mlflow.server.workers" and found is not None, problem
    most = int(found.group(1))
    assert dev_with({"cache.enabled": cache, "server.workers": most}).load()
    (over,) = dev_with({"cache.enabled": cache, "server.workers": most + 1}).problems()
    assert over.key == "mlflow.server.workers"


def test_an_instance_too_small_for_any_worker_says_so() -> None:
    (problem,) = dev_with(
        {"cache.enabled": True, "server.instance_type": "t3.small", "server.workers": 1}
    ).problems()
    assert str(problem).startswith(f"{DEV}: mlflow.server.workers: workers = 1 needs an estimated ")
    assert str(problem).endswith("not even one fits; or choose a larger instance_type")


@pytest.mark.parametrize(("instance_type", "gib"), [
    ("t3.micro", 1), ("t3.medium", 4), ("t3a.2xlarge", 32), ("c5.large", 4), ("c7i.4xlarge", 32),
    ("m6i.large", 8), ("m7a.2xlarge", 32), ("r6i.large", 16), ("r5.4xlarge", 128),
])  # fmt: skip
def test_the_memory_table_has_ec2s_figures(instance_type: str, gib: int) -> None:
    assert sizing.INSTANCE_MEMORY_MIB[instance_type] == gib * 1024


def test_the_model_accepts_exactly_the_types_whose_memory_is_known() -> None:
    for instance_type in sizing.INSTANCE_MEMORY_MIB:
        assert ServerSettings(instance_type=instance_type).instance_type == instance_type
    assert ServerSettings().instance_type in sizing.INSTANCE_MEMORY_MIB
    # arm64 (the AMI is x86_64), a size missing from the table, a typo.
    for unknown in ("t4g.medium", "m6i.metal", "t3.mediun"):
        (problem,) = dev_with({"server.instance_type": unknown}).problems()
        assert str(problem).startswith(
            f"{DEV}: mlflow.server.instance_type: {unknown!r} is not in the instance memory table"
        )


# --- the database engine -------------------------------------------------------------------


@pytest.mark.parametrize("version", ["8.4", "8.4.5", "8.0", "8.0.40"])
def test_the_engine_is_84_or_an_80_upgrade_source(version: str) -> None:
    [env] = [e for e in ConfigFiles(FIXTURES).set(DEV, "mlflow.database.engine_version", version).load()
             if e.name == "dev"]  # fmt: skip
    database = env.settings.mlflow.database
    assert database.engine_version == version
    assert database.parameter_group_family == f"mysql{version[:3]}"
    # Only 8.0 is an upgrade source; it loads with one warning naming the command and the runbook.
    warnings = advisories.find(env)
    if version.startswith("8.0"):
        assert warnings == [
            f"{DEV}: mlflow.database.engine_version: MySQL {version} is past RDS standard support (Extended "
            "Support is charged per vCPU-hour) and is accepted only for an existing database until its "
            "upgrade: `python -m ops db upgrade-engine --env dev --to 8.4` "
            "(docs/runbooks/mysql-major-upgrade.md)"
        ]
    else:
        assert warnings == []


def test_new_databases_are_84_and_out_of_extended_support() -> None:
    database = MlflowSettings().database
    assert (database.engine_version, database.parameter_group_family) == ("8.4", "mysql8.4")
    assert database.lifecycle_support == "open-source-rds-extended-support-disabled"
    assert database.allow_major_version_upgrade is False and database.apply_immediately is None


@pytest.mark.parametrize(("version", "explicit", "effective"), [
    ("8.4", None, "open-source-rds-extended-support-disabled"),
    # RDS enrolled every 8.0 instance created without the setting; enrollment never changes.
    ("8.0", None, "open-source-rds-extended-support"),
    # An instance upgraded from 8.0 stays enrolled: the file says so (the upgrade command writes it).
    ("8.4", "open-source-rds-extended-support", "open-source-rds-extended-support"),
    ("8.0.40", "open-source-rds-extended-support-disabled", "open-source-rds-extended-support-disabled"),
])  # fmt: skip
def test_extended_support_is_explicit(version: str, explicit: str | None, effective: str) -> None:
    settings = DatabaseSettings(engine_version=version, engine_lifecycle_support=explicit)
    assert settings.lifecycle_support == effective


def test_every_shipped_environment_is_a_new_84_database() -> None:
    for env in load_repo_environments():
        database = env.settings.mlflow.database
        assert database.engine_version == "8.4", env.name
        assert advisories.find(env) == [], env.name
