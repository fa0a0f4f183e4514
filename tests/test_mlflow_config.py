"""The ``mlflow = { ... }`` block: accepted values, and problems reported as ``file: key: problem``."""

from __future__ import annotations

import re

import pytest

from platform_config.errors import ConfigError
from platform_config.loader import BACKEND_DIR, TFVARS_DIR, load_environments, read_config_dir
from platform_config.mlflow import MlflowSettings
from tests.conftest import ROOT

PRD = "env_specific_vars/prd.tfvars"
DEV = "env_specific_vars/dev.tfvars"


def problems_after(file: str, old: str, new: str) -> list[str]:
    """Load the shipped environments with one edit in ``file``; the problems as printed."""
    tfvars = read_config_dir(ROOT, TFVARS_DIR)
    pattern = re.compile(old, re.M)
    assert pattern.search(tfvars[file]), old
    tfvars[file] = pattern.sub(new, tfvars[file], count=1)
    with pytest.raises(ConfigError) as err:
        load_environments(tfvars, read_config_dir(ROOT, BACKEND_DIR))
    return [str(p) for p in err.value.problems]


def test_shipped_environments_load() -> None:
    envs = {
        e.name: e.settings
        for e in load_environments(read_config_dir(ROOT, TFVARS_DIR), read_config_dir(ROOT, BACKEND_DIR))
    }
    assert envs["dev"].mlflow.load_balancer.certificate_arn is None
    assert envs["dev"].mlflow.cache.enabled is False
    assert envs["prd"].mlflow.database.instance_class == "db.r5.xlarge"
    assert envs["prd"].mlflow.cache.enabled and envs["prd"].mlflow.cache.num_nodes >= 2


def test_defaults_are_private_and_valid() -> None:
    settings = MlflowSettings()
    assert settings.load_balancer.ingress_cidrs == ("10.0.0.0/8",)
    assert settings.cache.enabled is False


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            r"multi_az(\s+)= true",
            r"multi_az\1= false",
            "mlflow.database.multi_az: must be true in a production environment",
        ),
        (
            r"deletion_protection(\s+)= true(\s+)performance",
            r"deletion_protection\1= false\2performance",
            "mlflow.database.deletion_protection: must be true",
        ),
        (
            r"monitoring_interval(\s+)= 60",
            r"monitoring_interval\1= 0",
            "mlflow.database.monitoring_interval: enhanced monitoring must be on",
        ),
        (
            r"^    certificate_arn.*$",
            "",
            "mlflow.load_balancer.certificate_arn: production serves HTTPS only",
        ),
        (r"min_size(\s+)= 3", r"min_size\1= 1", "mlflow.server.min_size: must be at least 2 in production"),
        (
            r'emails = \["mlops-oncall@example.com"\]',
            "emails = []",
            "mlflow.alerts.emails: production alerts need at least one recipient",
        ),
        (r"num_nodes(\s+)= 2", r"num_nodes\1= 1", "mlflow.cache.num_nodes: must be at least 2 in production"),
        (
            r"log_retention_days = 365",
            "log_retention_days = 90",
            "mlflow.log_retention_days: must be at least 365 in production",
        ),
    ],
)
def test_production_requires_hardening(old: str, new: str, problem: str) -> None:
    problems = problems_after(PRD, old, new)
    assert any(p.startswith(f"{PRD}: {problem}") for p in problems), problems


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            r"instance_type(\s+)= \"t3.medium\"",
            r"instance_typo\1= \"t3.medium\"",
            "mlflow.server.instance_typo: unknown key",
        ),
        (
            r"ingress_cidrs(\s+)= \[\"203.0.113.0/24\"\]",
            r'ingress_cidrs\1= ["203.0.113.0/33"]',
            "mlflow.load_balancer.ingress_cidrs[0]: '203.0.113.0/33' is not a valid CIDR block",
        ),
        (
            r"ingress_cidrs(\s+)= \[\"203.0.113.0/24\"\]",
            r"ingress_cidrs\1= []",
            "mlflow.load_balancer.ingress_cidrs: Tuple should have at least 1 item",
        ),
        (
            r'emails = \["mlops-dev-alerts@example.com"\]',
            'emails = ["not-an-address"]',
            "mlflow.alerts.emails[0]: 'not-an-address' is not an e-mail address",
        ),
        (
            r"performance_insights(\s+)= false",
            r"performance_insights\1= true",
            "mlflow.database: performance_insights is not available on db.t3.micro",
        ),
        (
            r"max_size(\s+)= 2",
            r"max_size\1= 0",
            "mlflow.server.max_size: Input should be greater than or equal to 1",
        ),
        (
            r"desired_capacity(\s+)= 1",
            r"desired_capacity\1= 5",
            "mlflow.server: needs min_size <= desired_capacity <= max_size",
        ),
        (
            r"log_retention_days = 30",
            "log_retention_days = 31",
            "mlflow.log_retention_days: 31 is not a CloudWatch retention period",
        ),
        (
            r'mlflow_version(\s+)= "3.17.2"',
            r'mlflow_version\1= "2.22.0"',
            "mlflow: mlflow_version 2.22.0 is too old",
        ),
        (
            r"monitoring_interval(\s+)= 0",
            r"monitoring_interval\1= 7",
            "mlflow.database.monitoring_interval: Input should be 0, 1, 5, 10, 15, 30 or 60",
        ),
        (
            r'log_exports(\s+)= \["error", "slowquery"\]',
            r'log_exports\1= ["audit"]',
            "mlflow.database.log_exports[0]: Input should be 'error', 'general' or 'slowquery'",
        ),
        (
            r"max_allocated_storage_gb = 100",
            "max_allocated_storage_gb = 10",
            "mlflow.database.max_allocated_storage_gb: Input should be greater than or equal to 20",
        ),
    ],
)
def test_bad_values_are_reported_with_file_and_key(old: str, new: str, problem: str) -> None:
    problems = problems_after(DEV, old, new)
    assert any(p.startswith(f"{DEV}: {problem}") for p in problems), problems


def test_certificate_arn_must_be_an_acm_arn() -> None:
    problems = problems_after(
        PRD,
        r'certificate_arn(\s+)= "[^"]+"',
        r'certificate_arn\1= "arn:aws:iam::111122223333:server-certificate/x"',
    )
    assert any(
        p.startswith(f"{PRD}: mlflow.load_balancer.certificate_arn: String should match pattern")
        for p in problems
    ), problems


def test_secrets_in_the_block_are_refused() -> None:
    problems = problems_after(DEV, r"^  cache = \{", '  db_password = "hunter2hunter2"\n  cache = {')
    assert any(p.startswith(f"{DEV}: mlflow.db_password: looks like a secret") for p in problems), problems
