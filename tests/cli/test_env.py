"""``ops env add NEW --from OLD``: the new environment's two files (loadable, synthesizable), its
CI entries, and every file put back when a step fails. Sources follow the shipped environments;
the new environment's name is generated (tests.conftest.scratch_env_name)."""

from __future__ import annotations

import ipaddress
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from ops import cli
from ops.env import files, workflows
from ops.lint import terraform_fmt
from platform_config import naming
from platform_config.loader import BACKEND_DIR, TFVARS_DIR, Environment, load
from tests.cli.support import repo_copy
from tests.conftest import ROOT, Synthesized, load_repo_environments, scratch_env_name
from tests.fixtures.envs import ConfigFiles

ENVS = {e.name: e for e in load_repo_environments()}
NON_PRODUCTION = [name for name, e in ENVS.items() if not e.settings.is_production]
PRODUCTION = [name for name, e in ENVS.items() if e.settings.is_production]


def _env_add(root: Path, *argv: str) -> int:
    try:
        return cli.main(["--root", str(root), "env", "add", *argv])
    except SystemExit as exc:  # argparse usage errors
        return int(exc.code or 0)


def ci_copy(tmp_path: Path) -> Path:
    """The shipped environment files (real values) and workflows."""
    root = repo_copy(tmp_path)
    shutil.copytree(ROOT / workflows.WORKFLOWS, root / workflows.WORKFLOWS)
    return root


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text()
        for d in (TFVARS_DIR, BACKEND_DIR, str(workflows.WORKFLOWS))
        for p in sorted((root / d).iterdir())
    }


@pytest.mark.parametrize("source", NON_PRODUCTION[:1])
def test_new_environment_gets_its_own_names_target_and_network(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    synth_with: Callable[[list[Environment], tuple[str, ...]], Synthesized],
    source: str,
) -> None:
    root = ci_copy(tmp_path)
    new = scratch_env_name()
    assert _env_add(root, new, "--from", source, "--no-artifacts") == 0
    shown = capsys.readouterr().out
    assert f"create the GitHub Environments {new}-plan and {new}" in shown
    assert f"--snapshot-update tests/stacks/test_bootstrap_stack.py::test_snapshot[{new}]" in shown

    envs = {e.name: e for e in load(root)}
    added, base = envs[new], envs[source]
    assert added.settings.bootstrap_state == "local"
    assert added.backend.bucket == naming.state_bucket(new)
    assert added.backend.kms_key_id == naming.state_kms_alias(new)
    assert added.backend.use_lockfile == base.backend.use_lockfile
    renamed = {k: v.replace(source, new) for k, v in base.settings.tags.items()}
    assert added.settings.tags == renamed
    assert (added.names.databricks.target, added.names.databricks.catalog) == (new, new)
    assert added.names.databricks.job_prefix == f"{new}-"
    assert added.names.databricks.model_full_name != base.names.databricks.model_full_name
    # The first range of the source's size after it that no environment uses, subnets moved along.
    vpc = ipaddress.ip_network(added.settings.network.vpc_cidr)
    old = ipaddress.ip_network(base.settings.network.vpc_cidr)
    taken = [ipaddress.ip_network(e.settings.network.vpc_cidr) for e in ENVS.values()]
    assert vpc == files.next_free_network(old, taken)
    assert vpc.prefixlen == old.prefixlen and int(vpc.network_address) > int(old.network_address)
    for other in ENVS.values():
        assert not vpc.overlaps(ipaddress.ip_network(other.settings.network.vpc_cidr)), other.name
    shift = int(vpc.network_address) - int(old.network_address)
    assert added.settings.network.private_subnet_cidrs == tuple(
        str(
            ipaddress.ip_network(
                (int(ipaddress.ip_network(c).network_address) + shift, ipaddress.ip_network(c).prefixlen)
            )
        )
        for c in base.settings.network.private_subnet_cidrs
    )
    # Everything else is the source's.
    assert added.settings.mlflow == base.settings.mlflow

    out = synth_with([added], naming.STACK_KINDS)
    bucket = out.resources(f"bootstrap-{new}", "aws_s3_bucket")["state"]
    assert bucket["bucket"] == f"mlopspltf-{new}-s3-tf-backend"
    assert list(out.stack(f"bootstrap-{new}")["terraform"]["backend"]) == ["local"]


def test_comments_naming_the_source_name_the_new_environment(tmp_path: Path) -> None:
    root = ci_copy(tmp_path)
    source, new = NON_PRODUCTION[0], scratch_env_name()
    assert _env_add(root, new, "--from", source, "--no-artifacts") == 0
    text = (root / TFVARS_DIR / f"{new}.tfvars").read_text()
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert f'# Environment "{new}"' in comments[0]
    assert not any(f'"{source}"' in c for c in comments)


def test_a_copy_does_not_create_the_accounts_oidc_provider_again(tmp_path: Path) -> None:
    """An account has one GitHub OIDC provider: a copy of an environment that creates it uses it
    ("existing"), and no comment of the copy claims that the copy creates it."""
    creators = [
        n for n, e in ENVS.items() if e.settings.ci is not None and e.settings.ci.oidc_provider == "create"
    ]
    assert creators, "no shipped environment creates the OIDC provider"
    root = ci_copy(tmp_path)
    for source in creators:
        new = scratch_env_name(root)
        assert _env_add(root, new, "--from", source, "--no-artifacts") == 0
        (copied,) = load(root, [new])
        assert copied.settings.ci is not None and copied.settings.ci.oidc_provider == "existing"
        text = (root / TFVARS_DIR / f"{new}.tfvars").read_text()
        comments = [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]
        assert not any(f"{new} creates" in c or f"{new}'s bootstrap creates" in c for c in comments), comments
        assert any(f"{source}'s bootstrap creates the account's GitHub OIDC provider" in c for c in comments)
        # The ci block as terraform fmt writes it (make check's format test reads every environment
        # file; this copy's other lines hold the tests' stand-in values, of other lengths).
        block = re.compile(r"(?ms)^ci = \{.*?^\}")
        assert block.findall(terraform_fmt(text, None)) == block.findall(text)


@pytest.mark.parametrize("source", PRODUCTION[:1])
def test_a_production_source_gives_a_target_of_its_own(tmp_path: Path, source: str) -> None:
    root = ci_copy(tmp_path)
    new = scratch_env_name()
    assert _env_add(root, new, "--from", source, "--no-artifacts") == 0
    added = next(e for e in load(root) if e.name == new)
    assert (added.names.databricks.target, added.names.databricks.catalog) == (new, new)
    assert (
        ipaddress.ip_network(added.settings.network.vpc_cidr).prefixlen
        == ipaddress.ip_network(ENVS[source].settings.network.vpc_cidr).prefixlen
    )


def test_ci_entries_are_written_into_the_workflows(tmp_path: Path) -> None:
    root = ci_copy(tmp_path)
    source, new = NON_PRODUCTION[0], scratch_env_name()
    assert _env_add(root, new, "--from", source, "--no-artifacts") == 0
    shipped = yaml.safe_load((ROOT / workflows.WORKFLOWS / "pr.yml").read_text())
    pr = yaml.safe_load((root / workflows.WORKFLOWS / "pr.yml").read_text())
    planned = shipped["jobs"]["plan"]["strategy"]["matrix"]["env"]
    assert pr["jobs"]["plan"]["strategy"]["matrix"]["env"] == [*planned, new]
    sections = ", ".join(f'"{e}"' for e in [*planned, new])
    assert f"const sections = [{sections}].map(" in pr["jobs"]["comment"]["steps"][-1]["with"]["script"]
    drift = yaml.safe_load((root / workflows.WORKFLOWS / "drift.yml").read_text())
    matrix = drift["jobs"]["plan"]["strategy"]["matrix"]
    assert new in matrix["env"]
    branches = {i["env"]: i["branch"] for i in matrix["include"]}
    assert branches[new] == branches[source]
    deploy = yaml.safe_load((root / workflows.WORKFLOWS / f"deploy-{new}.yml").read_text())
    assert list(deploy[True]) == ["workflow_dispatch"]  # YAML 1.1 reads `on` as True
    assert deploy["jobs"]["deploy"]["with"] == {"env": new}
    assert deploy["jobs"]["deploy"]["uses"] == "./.github/workflows/deploy.yml"
    assert deploy["jobs"]["checks"]["if"] == f"github.ref == 'refs/heads/{branches[source]}'"


def test_a_workflow_without_its_anchor_is_refused_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = ci_copy(tmp_path)
    drift = root / workflows.WORKFLOWS / "drift.yml"
    drift.write_text(drift.read_text().replace("        env: [", "        env:\n          ["))
    before = tree(root)
    assert _env_add(root, scratch_env_name(), "--from", NON_PRODUCTION[0], "--no-artifacts") == 2
    err = capsys.readouterr().err
    assert "drift.yml: expected exactly one matrix `env: [...]`" in err
    assert tree(root) == before


def test_a_failed_generation_puts_every_file_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No snapshot tests in this copy: the step fails after the files and CI entries were written."""
    root = ci_copy(tmp_path)
    before = tree(root)
    assert _env_add(root, scratch_env_name(), "--from", NON_PRODUCTION[0]) == 1
    assert "no snapshot tests" in capsys.readouterr().err
    assert tree(root) == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            [NON_PRODUCTION[0], "--from", NON_PRODUCTION[0]],
            f"environment {NON_PRODUCTION[0]!r} exists already",
        ),
        (["QA", "--from", NON_PRODUCTION[0]], "'QA': an environment name is 2-8 lowercase letters"),
        (["{new}", "--from", "{new}x"], "error: --from: unknown environment '{new}x'"),
        (["{new}"], "the following arguments are required: --from"),
    ],
)
def test_usage_errors_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    root = ci_copy(tmp_path)
    new = scratch_env_name()
    before = tree(root)
    assert _env_add(root, *(a.format(new=new) for a in argv), "--no-artifacts") == 2
    err = capsys.readouterr().err
    assert message.format(new=new) in err
    assert "Traceback" not in err
    assert tree(root) == before


def test_files_are_removed_again_when_the_result_does_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = ci_copy(tmp_path)
    new = scratch_env_name()
    other = next(n for n in ENVS if n != NON_PRODUCTION[0])
    path = f"{TFVARS_DIR}/{other}.tfvars"
    (root / path).write_text(ConfigFiles(root).set(path, "databricks.target", new).tfvars[path])
    before = tree(root)
    assert _env_add(root, new, "--from", NON_PRODUCTION[0], "--no-artifacts") == 2
    err = capsys.readouterr().err
    assert f"databricks.target: '{new}' is also the target of environment" in err
    assert tree(root) == before
