"""What the workflows assume of GitHub, per environment of the repository.

* ``<env>-plan`` (pull-request plans, deploy plans, drift checks): exists, no deployment branch
  rule (pull-request jobs run on ``refs/pull/<n>/merge``, which no branch rule admits), no required
  reviewer except optionally in production; variable ``AWS_PLAN_ROLE_ARN`` = the plan role of
  ``bootstrap-<env>``.
* ``<env>`` (applies, integration tests): exists, deploys only from the branch whose push starts
  its deploy workflow (``main`` for dev and tst, ``release`` for prd: read from the workflows), or
  the one branch a workflow started by hand is limited to (``ops env add``'s ``deploy-<env>.yml``),
  required reviewers exactly in production; variable ``AWS_DEPLOY_ROLE_ARN`` = the deploy role.
* Every variable a job of that Environment reads (``vars.NAME`` without a ``||`` default) is set
  in the Environment or, for names other than the role ARNs, in the repository.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platform_config import naming
from platform_config.loader import Environment

WORKFLOWS = Path(".github") / "workflows"
DEPLOY_WORKFLOW = "./.github/workflows/deploy.yml"
ROLE_VARIABLES = {"plan": "AWS_PLAN_ROLE_ARN", "deploy": "AWS_DEPLOY_ROLE_ARN"}
_VAR = re.compile(r"vars\.([A-Za-z_][A-Za-z0-9_]*)(\s*\|\|)?")


@dataclass(frozen=True)
class Expected:
    name: str  # the GitHub Environment
    purpose: str  # plan or deploy
    env: str
    branches: tuple[str, ...] | None  # None: no branch rule at all
    reviewers_required: bool | None  # None: either is fine
    variables: tuple[str, ...]  # every variable its jobs read without a default
    role_arn: str  # exact value, or a regular expression when the account is unknown
    role_arn_is_pattern: bool


# A job limited to one branch: `if: github.ref == 'refs/heads/main'`.
_REF_GUARD = re.compile(r"github\.ref == 'refs/heads/([\w./-]+)'")


def _load(path: Path) -> dict[str, Any]:
    import yaml  # type: ignore[import-untyped]  # in .venv with the test tools

    data: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    return data


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as True.
    on = workflow.get("on", workflow.get(True, {}))  # type: ignore[call-overload]
    return on if isinstance(on, dict) else {}


def deploy_branches(root: Path) -> dict[str, tuple[str, ...]]:
    """Environment -> the branches a workflow that deploys it (deploy.yml with a literal ``env``)
    runs from: those whose push starts it, and for one started by hand (``workflow_dispatch``, as
    ``ops env add`` writes them), the branch its jobs are limited to
    (``if: github.ref == 'refs/heads/<branch>'``)."""
    out: dict[str, set[str]] = {}
    for path in sorted((root / WORKFLOWS).glob("*.yml")):
        workflow = _load(path)
        triggers = _triggers(workflow)
        push = triggers.get("push") or {}
        branches = list(push.get("branches", [])) if isinstance(push, dict) else []
        jobs = workflow.get("jobs") or {}
        if "workflow_dispatch" in triggers:
            branches += [
                m.group(1) for job in jobs.values() for m in _REF_GUARD.finditer(str(job.get("if", "")))
            ]
        for job in jobs.values():
            if job.get("uses") == DEPLOY_WORKFLOW and isinstance(job.get("with", {}).get("env"), str):
                out.setdefault(job["with"]["env"], set()).update(branches)
    return {env: tuple(sorted(b)) for env, b in out.items()}


def job_variables(root: Path) -> dict[str, set[str]]:
    """ "plan" / "deploy" -> the variables jobs of such an Environment read without a default."""
    out: dict[str, set[str]] = {"plan": set(), "deploy": set()}
    import yaml

    for path in sorted((root / WORKFLOWS).glob("*.yml")):
        workflow = _load(path)
        for job in (workflow.get("jobs") or {}).values():
            environment = job.get("environment")
            name = environment.get("name") if isinstance(environment, dict) else environment
            if not isinstance(name, str):
                continue
            purpose = "plan" if name.endswith("-plan") else "deploy"
            body = yaml.safe_dump(job, width=10_000)
            out[purpose] |= {m.group(1) for m in _VAR.finditer(body) if not m.group(2)}
    return out


def expectations(root: Path, envs: list[Environment]) -> list[Expected]:
    branches = deploy_branches(root)
    variables = job_variables(root)
    out: list[Expected] = []
    for env in envs:
        ci = env.settings.ci
        if ci is None:
            continue
        account = env.settings.aws_account_id
        for purpose in ("plan", "deploy"):
            role = naming.ci_role(env.name, purpose)
            arn = (
                f"arn:aws:iam::{account}:role/{role}"
                if account
                else rf"arn:aws[a-z-]*:iam::\d{{12}}:role/{re.escape(role)}"
            )
            production = env.settings.is_production
            out.append(
                Expected(
                    name=naming.ci_github_environment(env.name, purpose),
                    purpose=purpose,
                    env=env.name,
                    branches=None if purpose == "plan" else branches.get(env.name, ()),
                    reviewers_required=(None if production else False) if purpose == "plan" else production,
                    variables=tuple(sorted(variables[purpose] | {ROLE_VARIABLES[purpose]})),
                    role_arn=arn,
                    role_arn_is_pattern=account is None,
                )
            )
    return out
