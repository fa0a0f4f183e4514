"""The CI roles' policies evaluated as AWS evaluates them, with a policy simulator.

moto cannot do this: its AssumeRoleWithWebIdentity (moto/sts/models.py) ignores the token and the
trust policy, and its trust check for sts:AssumeRole (moto/iam/access_control.py,
``_check_role_trust_relationship``) knows only StringEquals on sts:ExternalId and passes a condition
whose key is absent. So the synthesized policies go through @cloud-copilot/iam-simulate's engine
(tools/iam-simulate/simulate.cjs says why its core engine is called directly): the trust refuses a
token of another environment, another repository or no environment; the plan role's identity
policies allow the state lock and refuse every write, with the condition keys moto ignores
(dynamodb:LeadingKeys, kms:ViaService, iam:PermissionsBoundary) evaluated.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

import pytest

from ops import iam_policies
from ops.iam_policies import EXAMPLE_ACCOUNT
from platform_config import naming
from tests.conftest import ROOT, Synthesized, shipped_env_names

SIMULATOR = ROOT / "tools" / "iam-simulate"
ENVS = shipped_env_names()
HOST = naming.GITHUB_OIDC_HOST
PROVIDER = f"arn:aws:iam::{EXAMPLE_ACCOUNT}:oidc-provider/{HOST}"
ALLOWED = "Allowed"


@dataclass
class Case:
    id: str
    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)
    principal: str = PROVIDER
    identityPolicies: list[dict[str, Any]] = field(default_factory=list)  # noqa: N815 (the JSON key)
    resourcePolicy: dict[str, Any] | None = None  # noqa: N815
    boundaries: list[dict[str, Any]] = field(default_factory=list)
    accountId: str = EXAMPLE_ACCOUNT  # noqa: N815


def simulate(cases: list[Case]) -> dict[str, str]:
    node = shutil.which("node")
    if node is None or not (SIMULATOR / "node_modules" / ".installed").exists():
        pytest.fail("the IAM policy simulator is missing: run `make test` (installs tools/iam-simulate)")
    result = subprocess.run(
        [node, str(SIMULATOR / "simulate.cjs")],
        input=json.dumps([c.__dict__ for c in cases]),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {r["id"]: r["result"] for r in json.loads(result.stdout)}


def resolved(synth: Synthesized, stack: str, text: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(iam_policies._substitute(text, synth.stack(stack)))
    return parsed


def claims(sub: str | None, aud: str = naming.GITHUB_OIDC_AUDIENCE) -> dict[str, str]:
    out = {f"{HOST}:aud": aud}
    if sub is not None:
        out[f"{HOST}:sub"] = sub
    return out


@pytest.mark.parametrize("env", ENVS)
def test_trust_admits_its_environment_and_refuses_every_other_token(synth: Synthesized, env: str) -> None:
    settings = synth.env(env).settings.ci
    assert settings is not None
    repo = settings.github_repository
    owner, name = repo.split("/")
    stack = f"bootstrap-{env}"
    others = [e for e in ENVS if e != env]
    cases: list[Case] = []
    expected: dict[str, str] = {}
    for role, github_env in (("ci_plan", f"{env}-plan"), ("ci_deploy", env)):
        role_arn = f"arn:aws:iam::{EXAMPLE_ACCOUNT}:role/{naming.ci_role(env, role.removeprefix('ci_'))}"
        trust = resolved(synth, stack, synth.resources(stack, "aws_iam_role")[role]["assume_role_policy"])
        sibling = env if role == "ci_plan" else f"{env}-plan"
        tokens = {
            "its own environment": (claims(f"repo:{repo}:environment:{github_env}"), PROVIDER, ALLOWED),
            "the sibling environment": (claims(f"repo:{repo}:environment:{sibling}"), PROVIDER, "denied"),
            **{
                f"environment {other}": (claims(f"repo:{repo}:environment:{other}"), PROVIDER, "denied")
                for other in others
            },
            "another repository": (
                claims(f"repo:someone-else/{name}:environment:{github_env}"),
                PROVIDER,
                "denied",
            ),
            "a repository with this one's name as prefix": (
                claims(f"repo:{repo}-fork:environment:{github_env}"),
                PROVIDER,
                "denied",
            ),
            "the owner in other letter case": (
                claims(f"repo:{owner.upper()}/{name}:environment:{github_env}"),
                PROVIDER,
                "denied",
            ),
            "a pull request (no environment)": (claims(f"repo:{repo}:pull_request"), PROVIDER, "denied"),
            "a branch (no environment)": (claims(f"repo:{repo}:ref:refs/heads/main"), PROVIDER, "denied"),
            "no subject": (claims(None), PROVIDER, "denied"),
            "another audience": (
                claims(f"repo:{repo}:environment:{github_env}", aud="https://github.com/acme"),
                PROVIDER,
                "denied",
            ),
            "another identity provider": (
                claims(f"repo:{repo}:environment:{github_env}"),
                f"arn:aws:iam::{EXAMPLE_ACCOUNT}:oidc-provider/gitlab.com",
                "denied",
            ),
        }
        for what, (context, principal, outcome) in tokens.items():
            case_id = f"{role}: {what}"
            cases.append(
                Case(
                    case_id,
                    "sts:AssumeRoleWithWebIdentity",
                    role_arn,
                    context=context,
                    principal=principal,
                    resourcePolicy=trust,
                )
            )
            expected[case_id] = outcome
    results = simulate(cases)
    assert {k: ("denied" if v != ALLOWED else v) for k, v in results.items()} == expected


def identity_policies(synth: Synthesized, env: str, addresses: tuple[str, ...]) -> list[dict[str, Any]]:
    stack = f"bootstrap-{env}"
    policies = synth.resources(stack, "aws_iam_policy")
    return [resolved(synth, stack, policies[a]["policy"]) for a in addresses]


PLAN = ("ci_describe", "ci_read", "ci_plan_state")
DEPLOY = ("ci_describe", "ci_read", "ci_deploy_state", "ci_deploy_write", "ci_deploy_network")


@pytest.mark.parametrize("env", ENVS)
def test_plan_role_takes_the_lock_and_writes_nothing_else(synth: Synthesized, env: str) -> None:
    """The conditions moto does not evaluate, evaluated: the lock item but not the digest, decryption
    only through the services, nothing of another environment, no write anywhere."""
    region = synth.env(env).settings.aws_region
    a = EXAMPLE_ACCOUNT
    bucket = f"arn:aws:s3:::{naming.state_bucket(env)}"
    table = f"arn:aws:dynamodb:{region}:{a}:table/{naming.lock_table(env)}"
    key = iam_policies._resolve("aws_kms_key.mlflow.arn", synth.stack(f"mlflow-{env}"))
    lock_item = f"{naming.state_bucket(env)}/{naming.state_key('mlflow')}"
    other = "zz9"  # an environment name no shipped environment has
    tags = {"aws:ResourceTag/Project": naming.PROJECT, "aws:ResourceTag/Environment": env}
    checks: dict[str, tuple[str, str, dict[str, Any], str]] = {
        "state read": ("s3:GetObject", f"{bucket}/{naming.state_key('mlflow')}", {}, ALLOWED),
        "lockfile write": ("s3:PutObject", f"{bucket}/{naming.state_key('mlflow')}.tflock", {}, ALLOWED),
        "state write": ("s3:PutObject", f"{bucket}/{naming.state_key('mlflow')}", {}, "denied"),
        "state delete": ("s3:DeleteObject", f"{bucket}/{naming.state_key('mlflow')}", {}, "denied"),
        "lock item write": ("dynamodb:PutItem", table, {"dynamodb:LeadingKeys": [lock_item]}, ALLOWED),
        "digest item write": (
            "dynamodb:PutItem",
            table,
            {"dynamodb:LeadingKeys": [f"{lock_item}-md5"]},
            "denied",
        ),
        "state key decrypt": ("kms:Decrypt", "ARN_OF_STATE_KEY", {}, ALLOWED),
        # Nothing a plan reads is decrypted (String settings, no secret version): no decrypt at all.
        "decrypt through ssm": (
            "kms:Decrypt",
            key,
            {**tags, "kms:ViaService": f"ssm.{region}.amazonaws.com"},
            "denied",
        ),
        "read a generated secret's value": (
            "secretsmanager:GetSecretValue",
            f"arn:aws:secretsmanager:{region}:{a}:secret:mlopspltf-{env}-mlflow-admin-password-AbCdEf",
            {},
            "denied",
        ),
        "decrypt directly": ("kms:Decrypt", key, tags, "denied"),
        "decrypt another environment's key": (
            "kms:Decrypt",
            key,
            {**tags, "aws:ResourceTag/Environment": other, "kms:ViaService": f"ssm.{region}.amazonaws.com"},
            "denied",
        ),
        "another environment's secret": (
            "secretsmanager:GetSecretValue",
            f"arn:aws:secretsmanager:{region}:{a}:secret:mlopspltf-{other}-mlflow-x-AbCdEf",
            {},
            "denied",
        ),
        "describe in its region": ("ec2:DescribeVpcs", "*", {"aws:RequestedRegion": region}, ALLOWED),
        "describe elsewhere": ("ec2:DescribeVpcs", "*", {"aws:RequestedRegion": "ap-south-2"}, "denied"),
        "bucket policy write": ("s3:PutBucketPolicy", bucket, {}, "denied"),
        "role creation": (
            "iam:CreateRole",
            f"arn:aws:iam::{a}:role/{naming.resource_prefix(env)}-x",
            {},
            "denied",
        ),
        "vpc creation": (
            "ec2:CreateVpc",
            f"arn:aws:ec2:{region}:{a}:vpc/*",
            {"aws:RequestedRegion": region},
            "denied",
        ),
        "parameter write": (
            "ssm:PutParameter",
            f"arn:aws:ssm:{region}:{a}:parameter/{naming.resource_prefix(env)}/mlflow/x",
            {},
            "denied",
        ),
        "function invocation": (
            "lambda:InvokeFunction",
            f"arn:aws:lambda:{region}:{a}:function:{naming.resource_prefix(env)}-mlflow-db-users",
            {},
            "denied",
        ),
    }
    policies = identity_policies(synth, env, PLAN)
    state_key = next(s["Resource"] for s in policies[2]["Statement"] if s["Sid"] == "StateEncryption")
    # KMS also asks the key policy (which delegates to IAM through the account root statement).
    key_policies = {
        "ARN_OF_STATE_KEY": resolved(
            synth, f"bootstrap-{env}", synth.resources(f"bootstrap-{env}", "aws_kms_key")["state"]["policy"]
        ),
        key: resolved(
            synth, f"mlflow-{env}", synth.resources(f"mlflow-{env}", "aws_kms_key")["mlflow"]["policy"]
        ),
    }
    cases = [
        Case(
            what,
            action,
            state_key if resource == "ARN_OF_STATE_KEY" else resource,
            context=context,
            principal=f"arn:aws:sts::{a}:assumed-role/{naming.ci_role(env, 'plan')}/ci",
            identityPolicies=policies,
            resourcePolicy=key_policies.get(resource) if action.startswith("kms:") else None,
        )
        for what, (action, resource, context, _) in checks.items()
    ]
    results = simulate(cases)
    assert {k: ("denied" if v != ALLOWED else v) for k, v in results.items()} == {
        k: v[3] for k, v in checks.items()
    }


@pytest.mark.parametrize("env", ENVS)
def test_deploy_role_creates_only_bounded_roles_and_leaves_bootstrap_alone(
    synth: Synthesized, env: str
) -> None:
    region = synth.env(env).settings.aws_region
    a = EXAMPLE_ACCOUNT
    prefix = naming.resource_prefix(env)
    boundary = f"arn:aws:iam::{a}:policy/{naming.workload_boundary(env)}"
    role = f"arn:aws:iam::{a}:role/{prefix}-mlflow-instance"
    checks: dict[str, tuple[str, str, dict[str, Any], str]] = {
        "role with the boundary": ("iam:CreateRole", role, {"iam:PermissionsBoundary": boundary}, ALLOWED),
        "role without a boundary": ("iam:CreateRole", role, {}, "denied"),
        "role with another boundary": (
            "iam:CreateRole",
            role,
            {"iam:PermissionsBoundary": f"arn:aws:iam::{a}:policy/AdministratorAccess"},
            "denied",
        ),
        "boundary removed": ("iam:DeleteRolePermissionsBoundary", role, {}, "ExplicitlyDenied"),
        "boundary rewritten": ("iam:CreatePolicyVersion", boundary, {}, "ExplicitlyDenied"),
        "its own role changed": (
            "iam:PutRolePolicy",
            f"arn:aws:iam::{a}:role/{naming.ci_role(env, 'deploy')}",
            {},
            "denied",
        ),
        "the plan role changed": (
            "iam:AttachRolePolicy",
            f"arn:aws:iam::{a}:role/{naming.ci_role(env, 'plan')}",
            {},
            "denied",
        ),
        "state bucket policy": (
            "s3:PutBucketPolicy",
            f"arn:aws:s3:::{naming.state_bucket(env)}",
            {},
            "denied",
        ),
        "state write": (
            "s3:PutObject",
            f"arn:aws:s3:::{naming.state_bucket(env)}/{naming.state_key('mlflow')}",
            {},
            ALLOWED,
        ),
        "artifact bucket policy": (
            "s3:PutBucketPolicy",
            f"arn:aws:s3:::{prefix}-mlflow-artifacts-0a1b",
            {},
            ALLOWED,
        ),
        "another environment's bucket": (
            "s3:PutBucketPolicy",
            "arn:aws:s3:::mlopspltf-zz9-mlflow-artifacts-0a1b",
            {},
            "denied",
        ),
        "database in the environment": (
            "rds:ModifyDBInstance",
            f"arn:aws:rds:{region}:{a}:db:{prefix}-mlflow",
            {},
            ALLOWED,
        ),
        "database elsewhere": (
            "rds:DeleteDBInstance",
            f"arn:aws:rds:{region}:{a}:db:someone-else",
            {},
            "denied",
        ),
    }
    policies = identity_policies(synth, env, DEPLOY)
    cases = [
        Case(
            what,
            action,
            resource,
            context=context,
            principal=f"arn:aws:sts::{a}:assumed-role/{naming.ci_role(env, 'deploy')}/ci",
            identityPolicies=policies,
        )
        for what, (action, resource, context, _) in checks.items()
    ]
    results = simulate(cases)
    want = {k: v[3] for k, v in checks.items()}
    got = {k: (v if v in (ALLOWED, "ExplicitlyDenied") else "denied") for k, v in results.items()}
    assert got == want


@pytest.mark.parametrize("env", ENVS)
def test_the_boundary_leaves_every_mlflow_role_its_own_grants(synth: Synthesized, env: str) -> None:
    """Every action on every resource an mlflow role's own policies allow is still allowed under the
    workload boundary (a grant the boundary cuts would fail at run time, not at apply)."""
    stack = f"mlflow-{env}"
    region = synth.env(env).settings.aws_region
    [boundary] = identity_policies(synth, env, ("workload_boundary",))
    tags = {"aws:ResourceTag/Project": naming.PROJECT, "aws:ResourceTag/Environment": env}
    key_policy = resolved(synth, stack, synth.resources(stack, "aws_kms_key")["mlflow"]["policy"])
    cases = []
    for rtype in ("aws_iam_policy", "aws_iam_role_policy"):
        for name, body in synth.resources(stack, rtype).items():
            document = resolved(synth, stack, body["policy"])
            for index, statement in enumerate(document["Statement"]):
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                resources = (
                    statement["Resource"]
                    if isinstance(statement["Resource"], list)
                    else [statement["Resource"]]
                )
                # The request the statement is written for: its own StringEquals values hold.
                own = statement.get("Condition", {}).get("StringEquals", {})
                for action in actions:
                    for resource in resources:
                        target = _example_resource(resource)
                        cases.append(
                            Case(
                                f"{rtype}.{name}#{index} {action} {target}",
                                action,
                                target,
                                context={**tags, "aws:RequestedRegion": region, **own},
                                principal=f"arn:aws:sts::{EXAMPLE_ACCOUNT}:assumed-role/{name}/x",
                                # The grant itself, on the concrete resource (the simulator does not
                                # match EC2's "*/*" against a typed ARN): the boundary is under test.
                                identityPolicies=[
                                    {
                                        "Version": "2012-10-17",
                                        "Statement": [{**statement, "Resource": target}],
                                    }
                                ],
                                resourcePolicy=key_policy if action.startswith("kms:") else None,
                                boundaries=[boundary],
                            )
                        )
    assert len(cases) > 20
    results = simulate(cases)
    cut = sorted(k for k, v in results.items() if v != ALLOWED)
    assert not cut, f"the workload boundary cuts these grants (extend boundary_statements): {cut}"


def _example_resource(pattern: str) -> str:
    """A concrete resource a pattern admits (``*/*`` of EC2: a network interface)."""
    if pattern == "*":
        return "*"
    if pattern.endswith(":*/*"):
        return pattern[: -len("*/*")] + "network-interface/eni-0123456789abcdef0"
    return pattern.replace("*", "x")
