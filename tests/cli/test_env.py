"""``ops env add NEW --from OLD``: the new environment's two files, loadable and synthesizable."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest

from ops import cli
from platform_config import naming
from platform_config.loader import BACKEND_DIR, TFVARS_DIR, Environment, load
from tests.cli.support import repo_copy
from tests.conftest import Synthesized


def _env_add(root: Path, *argv: str) -> int:
    try:
        return cli.main(["--root", str(root), "env", "add", *argv])
    except SystemExit as exc:  # argparse usage errors
        return int(exc.code or 0)


def test_new_environment_gets_its_own_names_target_and_network(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    synth_with: Callable[[list[Environment], tuple[str, ...]], Synthesized],
) -> None:
    root = repo_copy(tmp_path)
    assert _env_add(root, "qa", "--from", "dev") == 0
    shown = capsys.readouterr().out
    assert "pr.yml and drift.yml: add qa" in shown
    assert "GitHub Environments 'qa-plan' (variables AWS_PLAN_ROLE_ARN" in shown

    envs = {e.name: e for e in load(root)}
    qa, dev = envs["qa"], envs["dev"]
    assert qa.settings.bootstrap_state == "local"
    assert qa.backend.bucket == naming.state_bucket("qa")
    assert qa.backend.kms_key_id == naming.state_kms_alias("qa")
    assert qa.backend.use_lockfile == dev.backend.use_lockfile
    assert qa.settings.tags == {**dev.settings.tags, "CostCenter": "ml-qa"}
    assert (qa.names.databricks.target, qa.names.databricks.catalog) == ("qa", "qa")
    assert qa.names.databricks.job_prefix == "qa-"
    assert qa.names.databricks.model_full_name != dev.names.databricks.model_full_name
    vpc = ipaddress.ip_network(qa.settings.network.vpc_cidr)
    assert vpc == ipaddress.ip_network("10.11.0.0/16")
    for other in envs.values():
        if other.name != "qa":
            assert not vpc.overlaps(ipaddress.ip_network(other.settings.network.vpc_cidr)), other.name
    assert qa.settings.network.private_subnet_cidrs == ("10.11.16.0/20", "10.11.32.0/20")
    # Everything else is dev's.
    assert qa.settings.mlflow == dev.settings.mlflow

    out = synth_with([qa], naming.STACK_KINDS)
    bucket = out.resources("bootstrap-qa", "aws_s3_bucket")["state"]
    assert bucket["bucket"] == "mlopspltf-qa-s3-tf-backend"
    assert list(out.stack("bootstrap-qa")["terraform"]["backend"]) == ["local"]


def test_a_production_source_gives_a_target_of_its_own(tmp_path: Path) -> None:
    root = repo_copy(tmp_path)
    assert _env_add(root, "stage", "--from", "prd") == 0
    stage = next(e for e in load(root) if e.name == "stage")
    assert (stage.names.databricks.target, stage.names.databricks.catalog) == ("stage", "stage")
    assert stage.settings.network.vpc_cidr == "10.31.0.0/16"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dev", "--from", "tst"], "environment 'dev' exists already"),
        (["QA", "--from", "dev"], "'QA': an environment name is 2-8 lowercase letters"),
        (["qa", "--from", "nope"], "error: --from: unknown environment 'nope'"),
        (["qa"], "the following arguments are required: --from"),
    ],
)
def test_usage_errors_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    root = repo_copy(tmp_path)
    before = sorted(p.name for p in (root / TFVARS_DIR).iterdir())
    assert _env_add(root, *argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert sorted(p.name for p in (root / TFVARS_DIR).iterdir()) == before


def test_files_are_removed_again_when_the_result_does_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = repo_copy(tmp_path)
    tst = root / TFVARS_DIR / "tst.tfvars"
    tst.write_text(tst.read_text().replace('target   = "staging"', 'target   = "qa"'))
    assert _env_add(root, "qa", "--from", "dev") == 2
    err = capsys.readouterr().err
    assert (
        "error: env_specific_vars/tst.tfvars: databricks.target: 'qa' is also the target of environment 'qa'"
        in err
    )
    assert not (root / TFVARS_DIR / "qa.tfvars").exists()
    assert not (root / BACKEND_DIR / "qa.config").exists()
