"""``python -m ops ci check`` against a fake GitHub REST API on 127.0.0.1: silent when the
settings are what the workflows assume, one line per difference otherwise, clear failures."""

from __future__ import annotations

import copy
import json
import shutil
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ops.ci.expected import deploy_branches, expectations, job_variables
from ops.cli import main
from platform_config import naming
from tests.conftest import ROOT, load_repo_environments, shipped_env_names
from tests.fixtures.real_values import supply_real_values

TOKEN = "test-token-not-a-secret"
ACCOUNT = "480923715562"


class FakeGitHub:
    """Environments and variables of one repository, served as GitHub's REST API pages them."""

    def __init__(
        self, repository: str, environments: dict[str, dict[str, Any]], variables: dict[str, str]
    ) -> None:
        self.repository = repository
        self.environments = environments
        self.variables = variables
        self.requests: list[str] = []
        self.status: int | None = None  # answer every request with this status instead

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if self.status is not None:
            return self.status, {"message": "Bad credentials"}
        base = f"/repos/{self.repository}"
        per_page = int(query.get("per_page", ["30"])[0])
        page = int(query.get("page", ["1"])[0])

        def paged(key: str, items: list[Any]) -> tuple[int, Any]:
            return 200, {"total_count": len(items), key: items[(page - 1) * per_page : page * per_page]}

        if path == f"{base}/environments":
            return paged(
                "environments",
                [
                    {
                        "name": name,
                        "protection_rules": (
                            [
                                {
                                    "type": "required_reviewers",
                                    "reviewers": [{"type": "User"}] * env["reviewers"],
                                }
                            ]
                            if env["reviewers"]
                            else []
                        ),
                        "deployment_branch_policy": (
                            None
                            if env["branches"] is None
                            else {"protected_branches": False, "custom_branch_policies": True}
                        ),
                    }
                    for name, env in self.environments.items()
                ],
            )
        if path == f"{base}/actions/variables":
            return paged("variables", [{"name": k, "value": v} for k, v in self.variables.items()])
        for name, env in self.environments.items():
            quoted = urllib.parse.quote(name, safe="")
            if path == f"{base}/environments/{quoted}/variables":
                return paged("variables", [{"name": k, "value": v} for k, v in env["variables"].items()])
            if path == f"{base}/environments/{quoted}/deployment-branch-policies":
                return paged(
                    "branch_policies", [{"name": b, "type": "branch"} for b in env["branches"] or []]
                )
        return 404, {"message": "Not Found"}


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub("acme-ml/mlops-infra", {}, {})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            fake.requests.append(self.path)
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                status, body = 401, {"message": "Requires authentication"}
            else:
                status, body = fake.answer(url.path, urllib.parse.parse_qs(url.query))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def right_settings(repo_root: Path) -> dict[str, dict[str, Any]]:
    """The settings the runbook prescribes, for every shipped environment."""
    out: dict[str, dict[str, Any]] = {}
    for env in load_repo_environments(repo_root):
        production = env.settings.is_production
        branch = "release" if production else "main"
        for purpose in ("plan", "deploy"):
            role = f"arn:aws:iam::{ACCOUNT}:role/{naming.ci_role(env.name, purpose)}"
            if purpose == "plan":
                variables = {"AWS_PLAN_ROLE_ARN": role, "DATABRICKS_PLAN_CLIENT_ID": "plan-sp"}
            else:
                variables = {"AWS_DEPLOY_ROLE_ARN": role, "DATABRICKS_DEPLOY_CLIENT_ID": "deploy-sp"}
            out[naming.ci_github_environment(env.name, purpose)] = {
                "reviewers": 1 if production and purpose == "deploy" else 0,
                "branches": None if purpose == "plan" else [branch],
                "variables": variables,
            }
    return out


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = supply_real_values(tmp_path / "repo")
    shutil.copytree(ROOT / ".github" / "workflows", root / ".github" / "workflows")
    return root


def run_check(
    repo: Path,
    fake: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    token: str = TOKEN,
) -> tuple[int, list[str], str]:
    monkeypatch.setenv("GITHUB_API_URL", fake.url)  # type: ignore[attr-defined]
    monkeypatch.delenv("GH_TOKEN", raising=False)
    if token:
        monkeypatch.setenv("GITHUB_TOKEN", token)
    else:
        monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    code = main(["--root", str(repo), "ci", "check"])
    out, err = capsys.readouterr()
    return (
        code,
        [line.removeprefix("difference: ") for line in out.splitlines() if line.startswith("difference: ")],
        err,
    )


def configure(fake: FakeGitHub, repo: Path) -> None:
    fake.environments = right_settings(repo)
    # The repository-level variable the deploy jobs read (the same audience everywhere).
    fake.variables = {"DATABRICKS_TOKEN_AUDIENCE": "https://example.invalid/oidc/v1/token"}


def test_right_settings_have_no_difference(
    repo: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(fake_github, repo)
    code, lines, err = run_check(repo, fake_github, monkeypatch, capsys)
    assert (code, lines, err) == (0, [], "")
    assert any("/deployment-branch-policies" in r for r in fake_github.requests)


def test_every_difference_is_one_line(
    repo: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(fake_github, repo)
    envs = fake_github.environments
    prd = next(e.name for e in load_repo_environments(repo) if e.settings.is_production)
    other = next(e.name for e in load_repo_environments(repo) if not e.settings.is_production)
    # The runbook's old advice: reviewers and branch `release` everywhere.
    envs[other]["reviewers"] = 1
    envs[other]["branches"] = ["release"]
    envs[f"{other}-plan"]["branches"] = ["main"]
    envs[prd]["reviewers"] = 0
    envs[prd]["variables"]["AWS_DEPLOY_ROLE_ARN"] = envs[prd]["variables"]["AWS_DEPLOY_ROLE_ARN"].replace(
        "-deploy", "-plan"
    )
    del envs[f"{prd}-plan"]["variables"]["DATABRICKS_PLAN_CLIENT_ID"]
    missing = next(n for n in envs if n not in (prd, other, f"{other}-plan", f"{prd}-plan"))
    del envs[missing]
    code, lines, _ = run_check(repo, fake_github, monkeypatch, capsys)
    assert code == 1
    assert sorted(lines) == sorted(
        [
            f"{other}: required reviewers: expected none (its jobs run unattended), found 1",
            f"{other}: deployment branches: expected exactly ['main'], found custom branches ['release']",
            f"{other}-plan: deployment branches: expected no rule (pull-request jobs run on refs/pull/<n>/merge), "
            "found custom branches ['main']",
            f"{prd}: required reviewers: expected at least one (production), found none",
            f"{prd}: variable AWS_DEPLOY_ROLE_ARN: expected a role named {naming.ci_role(prd, 'deploy')} "
            f"(bootstrap-{prd}'s output), found 'arn:aws:iam::{ACCOUNT}:role/{naming.ci_role(prd, 'plan')}'",
            f"{prd}-plan: variable DATABRICKS_PLAN_CLIENT_ID: missing (nor in the repository)",
            f"{missing}: missing: the workflows run {'plan' if missing.endswith('-plan') else 'deploy'} jobs of "
            f"{missing.removesuffix('-plan')} in it",
        ]
    )


def test_role_variables_must_be_set_in_the_environment_itself(
    repo: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A repository-level role ARN would hand every environment the same role."""
    configure(fake_github, repo)
    env = shipped_env_names(repo)[0]
    fake_github.variables["AWS_PLAN_ROLE_ARN"] = fake_github.environments[f"{env}-plan"]["variables"].pop(
        "AWS_PLAN_ROLE_ARN"
    )
    code, lines, _ = run_check(repo, fake_github, monkeypatch, capsys)
    assert (code, lines) == (1, [f"{env}-plan: variable AWS_PLAN_ROLE_ARN: missing"])


def test_exact_role_arn_when_the_account_is_known(
    repo: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(fake_github, repo)
    env = shipped_env_names(repo)[0]
    path = repo / "env_specific_vars" / f"{env}.tfvars"
    path.write_text(
        path.read_text().replace("is_production", 'aws_account_id = "111122224444"\nis_production', 1)
    )
    code, lines, _ = run_check(repo, fake_github, monkeypatch, capsys)
    want = f"arn:aws:iam::111122224444:role/{naming.ci_role(env, 'plan')}"
    assert code == 1
    assert (
        f"{env}-plan: variable AWS_PLAN_ROLE_ARN: expected {want} (bootstrap-{env}'s output), found "
        in "\n".join(lines)
    )


def test_variables_over_several_pages(
    repo: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(fake_github, repo)
    for name, env in fake_github.environments.items():
        filler = {f"FILLER_{i:02d}": "x" for i in range(45)}
        env["variables"] = {**filler, **env["variables"]} if name.endswith("-plan") else env["variables"]
    code, lines, _ = run_check(repo, fake_github, monkeypatch, capsys)
    assert (code, lines) == (0, [])
    assert any("page=2" in r and "/variables" in r for r in fake_github.requests)


def test_without_a_token_exit_2_and_no_request(
    repo: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_check(repo, fake_github, monkeypatch, capsys, token="")
    assert code == 2
    assert err.startswith("error: no GitHub token: set GITHUB_TOKEN")
    assert "Traceback" not in err
    assert fake_github.requests == []


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_one_line(
    status: int,
    repo: Path,
    fake_github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_github.status = status
    code, _, err = run_check(repo, fake_github, monkeypatch, capsys)
    assert code == 1
    assert (
        err
        == f"error: GitHub refused /repos/acme-ml/mlops-infra/environments ({status}): the token cannot read it (it needs read access to the repository's environments and variables)\n"
    )


def test_unknown_repository_is_one_line(
    repo: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_github.repository = "someone/else"
    code, _, err = run_check(repo, fake_github, monkeypatch, capsys)
    assert code == 1
    assert err == "error: repository acme-ml/mlops-infra not found (or the token cannot see it)\n"


def test_expectations_follow_the_workflows() -> None:
    """dev and tst deploy from main (deploy-tst.yml), prd from release (deploy-prd.yml); the role
    variables are what the jobs of each kind of Environment read."""
    branches = deploy_branches(ROOT)
    envs = load_repo_environments()
    for env in envs:
        assert branches[env.name] == (("release",) if env.settings.is_production else ("main",)), env.name
    variables = job_variables(ROOT)
    assert "AWS_PLAN_ROLE_ARN" in variables["plan"] and "AWS_DEPLOY_ROLE_ARN" not in variables["plan"]
    assert "AWS_DEPLOY_ROLE_ARN" in variables["deploy"] and "AWS_PLAN_ROLE_ARN" not in variables["deploy"]
    assert "AWS_REGION" not in variables["plan"] | variables["deploy"], "it has a default"
    expected = {x.name: x for x in expectations(ROOT, envs)}
    assert set(expected) == {f"{e.name}{s}" for e in envs for s in ("", "-plan")}
    assert all(x.branches is None for n, x in expected.items() if n.endswith("-plan"))


def test_shipped_files_have_a_ci_block() -> None:
    envs = load_repo_environments()
    assert all(e.settings.ci is not None for e in envs)
    assert copy.copy([e.name for e in envs]) == shipped_env_names()


def test_a_workflow_started_by_hand_deploys_from_its_one_branch(repo: Path) -> None:
    """ops env add's deploy-<env>.yml (workflow_dispatch, jobs limited to the source's branch):
    the Environment is expected to deploy from that branch, as from a push-started workflow."""
    from ops.env.workflows import deploy_workflow

    name = "t" + uuid.uuid4().hex[:7]
    workflows = repo / ".github" / "workflows"
    (workflows / f"deploy-{name}.yml").write_text(deploy_workflow(name, "prd", "release"))
    assert deploy_branches(repo)[name] == ("release",)
    # A hand-started workflow with no branch guard still says that nothing deploys it on a branch.
    text = deploy_workflow(name, "prd", "release").replace("    if: github.ref == 'refs/heads/release'\n", "")
    (workflows / f"deploy-{name}.yml").write_text(text)
    assert deploy_branches(repo).get(name, ()) == ()
