"""Documentation placeholders: named in one list, reported as ``file: key: placeholder value``,
a warning for ``synth`` and a refusal (exit 2, before Terraform) for ``plan`` and ``deploy``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from ops import cli, synth
from platform_config import placeholders
from platform_config.loader import BACKEND_DIR, TFVARS_DIR, Environment, load
from tests.conftest import ROOT, shipped_env_names
from tests.fixtures.databricks_env import BASE, load_variants
from tests.fixtures.real_values import supply_real_values


@pytest.mark.parametrize(("value", "what"), [
    ("https://adb-1234567890123456.7.azuredatabricks.net", "example Databricks workspace host"),
    ("https://adb-xxxx.xx.azuredatabricks.net", "example Databricks workspace host"),
    ("https://your-prod-workspace.cloud.databricks.com", "example Databricks workspace host"),
    ("https://dbc-a1b2c3d4-e5f6.cloud.databricks.com", "example Databricks workspace host"),
    ("0419-175415-rag0prod", "example Databricks cluster id"),
    ("1234-567890-reef123", "example Databricks cluster id"),
    ("arn:aws:acm:us-east-1:111122223333:certificate/3f1c9a2e-7b4d-4e8a-9c61-2d5b8e0f4a17", "example AWS account id"),
    ("123456789012", "example AWS account id"),
    ("arn:aws:acm:us-east-1:480923715562:certificate/00000000-0000-0000-0000-000000000000", "repeated-digit UUID"),
    ("203.0.113.0/24", "documentation IP range (RFC 5737/3849)"),
    ("198.51.100.7/32", "documentation IP range (RFC 5737/3849)"),
    ("192.0.2.0/25", "documentation IP range (RFC 5737/3849)"),
    ("2001:db8::/48", "documentation IP range (RFC 5737/3849)"),
    ("ops@example.com", "example domain (RFC 2606)"),
    ("https://mlflow.example.org/", "example domain (RFC 2606)"),
    ("ami-0abcdef1234567890", "example AMI id"),
])  # fmt: skip
def test_each_kind_of_placeholder_is_known(value: str, what: str) -> None:
    assert placeholders.placeholder_kind(value) == what


@pytest.mark.parametrize("value", [
    "https://adb-5820394716253849.11.azuredatabricks.net",
    "0415-213012-yi87kqjn",
    "arn:aws:acm:us-east-1:480923715562:certificate/3f1c9a2e-7b4d-4e8a-9c61-2d5b8e0f4a17",
    "100.64.10.0/24",
    "10.0.0.0/8",
    "ops@ml-platform.acme.io",
    "someone@notexample.com",
])  # fmt: skip
def test_real_looking_values_are_not_placeholders(value: str) -> None:
    assert placeholders.placeholder_kind(value) is None


def test_findings_name_the_file_and_the_tfvars_key() -> None:
    block = {**BASE, "training": {"existing_cluster_id": "1234-567890-reef123"}}
    (env,) = load_variants({"dev": (block, "dev")})
    findings = {f.key: f for f in placeholders.find(env)}
    assert str(findings["databricks.training.existing_cluster_id"]) == (
        "env_specific_vars/dev.tfvars: databricks.training.existing_cluster_id: placeholder value "
        "'1234-567890-reef123' (example Databricks cluster id)"
    )
    assert {"databricks.host", "databricks.deployer", "mlflow.load_balancer.ingress_cidrs[0]"} <= set(
        findings
    )


@pytest.mark.parametrize("name", shipped_env_names())
def test_the_shipped_files_still_hold_placeholders_and_still_load(
    repo_envs: list[Environment], name: str
) -> None:
    env = next(e for e in repo_envs if e.name == name)
    assert "databricks.host" in {f.key for f in placeholders.find(env)}


def test_synth_warns_once_per_file_with_a_count(
    repo_envs: list[Environment], capsys: pytest.CaptureFixture[str]
) -> None:
    synth.warn_placeholders(repo_envs)
    lines = capsys.readouterr().err.splitlines()
    counted = {e.tfvars_file: len(placeholders.find(e)) for e in repo_envs if placeholders.find(e)}
    assert len(lines) == len(counted) + 1
    for line, (file, count) in zip(lines, counted.items(), strict=False):
        assert line.startswith(
            f"warning: {file}: {count} documentation placeholder(s) (plan and deploy refuse them"
        )
    assert lines[-1] == "warning: list them with `python -m ops synth --warnings` (make synth WARNINGS=1)"


def test_synth_names_each_on_request(
    repo_envs: list[Environment], capsys: pytest.CaptureFixture[str]
) -> None:
    synth.warn_placeholders(repo_envs, every=True)
    lines = capsys.readouterr().err.splitlines()
    expected = [f"warning: {f}" for e in repo_envs for f in placeholders.find(e)]
    assert lines == expected and lines


def test_each_placeholder_points_at_the_page_of_its_stack() -> None:
    assert placeholders.doc_for("mlflow.server.ami_id") == "docs/stacks/mlflow.md"
    assert placeholders.doc_for("network.vpc_cidr") == "docs/stacks/mlflow.md"
    assert placeholders.doc_for("databricks.training.tasks[0].notebook") == "docs/stacks/databricks.md"
    assert placeholders.doc_for("state_bucket.replication.region") == "docs/stacks/bootstrap.md"
    assert placeholders.doc_for("aws_account_id") == "docs/configuration.md"
    for page in {placeholders.doc_for(k) for k in ("mlflow.x", "databricks.x", "state_bucket.x", "x")}:
        assert (ROOT / page).is_file(), page


@pytest.fixture
def untouched_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped files, placeholders and all, with a terraform/cdktf that must never run."""
    root = tmp_path / "repo"
    for directory in (TFVARS_DIR, BACKEND_DIR):
        shutil.copytree(ROOT / directory, root / directory)
    tool = tmp_path / "never"
    tool.write_text(f"#!{sys.executable}\nimport pathlib; pathlib.Path({str(tmp_path / 'ran')!r}).touch()\n")
    tool.chmod(0o755)
    monkeypatch.setenv("TERRAFORM_BINARY_NAME", str(tool))
    monkeypatch.setenv("MLOPS_CDKTF", str(tool))
    return root


@pytest.mark.parametrize("command", [
    ["plan", "--env", "prd", "--no-synth"],
    ["deploy", "--env", "prd", "--auto-approve", "--no-synth"],
    ["diff", "--env", "dev", "--no-synth"],
])  # fmt: skip
def test_plan_and_deploy_refuse_before_terraform(
    untouched_repo: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli.main(["--root", str(untouched_repo), *command])
    err = capsys.readouterr().err
    env = command[2]
    [loaded] = load(untouched_repo, [env])
    assert rc == 2
    assert err.splitlines()[:-1] == [f"error: {f}" for f in placeholders.find(loaded)]
    assert "nothing was done" in err.splitlines()[-1]
    pages = sorted({placeholders.doc_for(f.key) for f in placeholders.find(loaded)})
    assert {"docs/stacks/mlflow.md", "docs/stacks/databricks.md"} <= set(pages)
    assert f"(what to supply: {', '.join(pages)})" in err.splitlines()[-1]
    assert not (untouched_repo.parent / "ran").exists()


def test_without_placeholders_nothing_is_refused(untouched_repo: Path) -> None:
    envs = load(supply_real_values(untouched_repo))
    assert synth.refuse_placeholders(envs) is None
