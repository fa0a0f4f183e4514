"""The CI identities of ``bootstrap-<env>``: the plan role's reads are exactly the table's, the table
covers every type any stack synthesizes, the trust names one repository and one GitHub Environment,
the deploy role cannot reach the bootstrap stack, and every role it creates carries the boundary."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from constructs_lib.account import Account
from constructs_lib.ci_read_actions import ANTICIPATED, DECRYPTS, READS, plan_actions
from constructs_lib.encryption import CustomerKeyProps
from ops import iam_policies
from platform_config import naming
from platform_config.errors import ConfigError
from tests.conftest import Synthesized, shipped_env_names
from tests.fixtures.envs import ConfigFiles

ENVS = shipped_env_names()
ACCOUNT = Account(account_id="210987654321", partition="aws")


def synthesized_types(synth: Synthesized) -> dict[str, set[str]]:
    """Type (``data.<type>`` for data sources) -> the stacks that synthesize it."""
    out: dict[str, set[str]] = {}
    for stack in synth.stack_names():
        doc = synth.stack(stack)
        for rtype in doc.get("resource", {}):
            out.setdefault(rtype, set()).add(stack)
        for rtype in doc.get("data", {}):
            out.setdefault(f"data.{rtype}", set()).add(stack)
    return out


def policy(synth: Synthesized, env: str, address: str) -> dict[str, Any]:
    body = synth.resources(f"bootstrap-{env}", "aws_iam_policy")[address]
    parsed: dict[str, Any] = json.loads(body["policy"])
    return parsed


def actions_of(document: dict[str, Any], effect: str = "Allow") -> set[str]:
    out: set[str] = set()
    for statement in document["Statement"]:
        if statement["Effect"] == effect:
            action = statement["Action"]
            out |= {action} if isinstance(action, str) else set(action)
    return out


def test_table_covers_every_type_any_stack_synthesizes(synth: Synthesized) -> None:
    types = synthesized_types(synth)
    assert {name.split("-")[0] for name in synth.stack_names()} == set(naming.STACK_KINDS)
    missing = {t: sorted(stacks) for t, stacks in types.items() if t not in READS}
    assert not missing, (
        "types without an entry in constructs_lib/ci_read_actions.py (trace the provider's Read "
        f"of each and add its actions): {missing}"
    )


def test_table_lists_no_type_that_nothing_synthesizes(synth: Synthesized) -> None:
    types = synthesized_types(synth)
    stale = sorted(t for t in READS if t not in types and t not in ANTICIPATED)
    assert not stale, f"table entries no stack synthesizes (remove them, or say why in ANTICIPATED): {stale}"
    arrived = sorted(t for t in ANTICIPATED if t in types)
    assert not arrived, f"synthesized now: remove them from ANTICIPATED: {arrived}"


def test_every_table_action_is_service_colon_action() -> None:
    for rtype, reads in READS.items():
        for action in reads.actions:
            assert re.fullmatch(r"[a-z0-9-]+:[A-Z][A-Za-z0-9]+", action), (rtype, action)
        assert reads.source and reads.verified, rtype


@pytest.mark.parametrize("env", ENVS)
def test_plan_role_reads_exactly_the_table(synth: Synthesized, env: str) -> None:
    read = policy(synth, env, "ci_read")
    read["Statement"] += policy(synth, env, "ci_describe")["Statement"]
    expected = set(plan_actions()) | ({"kms:Decrypt"} if DECRYPTS else set())
    assert actions_of(read) == expected
    assert not any("*" in a for a in actions_of(read)), "no action wildcard"
    assert {s["Effect"] for s in read["Statement"]} == {"Allow"}


@pytest.mark.parametrize("env", ENVS)
def test_plan_role_has_only_the_reads_and_the_state_lock(synth: Synthesized, env: str) -> None:
    stack = f"bootstrap-{env}"
    attachments = synth.resources(stack, "aws_iam_role_policy_attachment")
    plan = sorted(v["policy_arn"] for k, v in attachments.items() if k.startswith("ci_plan_"))
    assert plan == [
        "${aws_iam_policy.ci_describe.arn}",
        "${aws_iam_policy.ci_plan_state.arn}",
        "${aws_iam_policy.ci_read.arn}",
    ]
    role = synth.resources(stack, "aws_iam_role")["ci_plan"]
    assert "inline_policy" not in role and "managed_policy_arns" not in role
    state = policy(synth, env, "ci_plan_state")
    writes = {a for a in actions_of(state) if not a.split(":")[1].startswith(("Get", "List", "Describe"))}
    assert writes == {
        "s3:PutObject",
        "s3:DeleteObject",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    }
    for statement in state["Statement"]:
        if {"s3:PutObject", "s3:DeleteObject"} & set(statement["Action"]):
            assert statement["Resource"].endswith("/mlopspltf_infra/*.tflock")
        if "dynamodb:PutItem" in statement["Action"]:
            assert "dynamodb:LeadingKeys" in statement["Condition"]["ForAllValues:StringLike"]


@pytest.mark.parametrize("env", ENVS)
def test_decrypts_only_what_a_refresh_reads_decrypted(synth: Synthesized, env: str) -> None:
    """DECRYPTS names a service exactly when a synthesized resource makes the refresh decrypt
    through it: SecureString parameters (ssm), secret versions (secretsmanager)."""
    secure = any(
        p.get("type") == "SecureString"
        for name in synth.stack_names()
        for p in synth.resources(name, "aws_ssm_parameter").values()
    )
    versions = any(synth.resources(name, "aws_secretsmanager_secret_version") for name in synth.stack_names())
    assert ("ssm" in DECRYPTS) == secure
    assert ("secretsmanager" in DECRYPTS) == versions
    decrypt = [s for s in policy(synth, env, "ci_describe")["Statement"] if s["Action"] == "kms:Decrypt"]
    if DECRYPTS:
        [statement] = decrypt
        condition = statement["Condition"]["StringEquals"]
        assert condition["aws:ResourceTag/Environment"] == env
        assert all(v.split(".")[0] in DECRYPTS for v in condition["kms:ViaService"])
    else:
        assert not decrypt


@pytest.mark.parametrize("env", ENVS)
def test_scoped_reads_name_only_this_environment(synth: Synthesized, env: str) -> None:
    prefix = naming.resource_prefix(env)
    statements = policy(synth, env, "ci_read")["Statement"] + policy(synth, env, "ci_describe")["Statement"]
    for statement in statements:
        resources = statement["Resource"]
        if resources == "*":
            assert statement["Condition"]["StringEquals"]["aws:RequestedRegion"], statement["Sid"]
            continue
        for arn in [resources] if isinstance(resources, str) else resources:
            named = re.search(r"mlopspltf-[a-z0-9]+", arn)
            assert named is None or named.group(0) == prefix, (statement["Sid"], arn)


def trust(synth: Synthesized, env: str, role: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(
        synth.resources(f"bootstrap-{env}", "aws_iam_role")[role]["assume_role_policy"]
    )
    return parsed


@pytest.mark.parametrize("env", ENVS)
def test_trust_names_one_repository_and_one_github_environment(synth: Synthesized, env: str) -> None:
    ci = synth.env(env).settings.ci
    assert ci is not None
    provider = (
        "${aws_iam_openid_connect_provider.github.arn}"
        if ci.oidc_provider == "create"
        else "${data.aws_iam_openid_connect_provider.github.arn}"
    )
    for role, github_env in (("ci_plan", f"{env}-plan"), ("ci_deploy", env)):
        assert trust(synth, env, role) == {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "GitHubActionsJobsOfOneEnvironment",
                    "Effect": "Allow",
                    "Principal": {"Federated": provider},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                            "token.actions.githubusercontent.com:sub": f"repo:{ci.github_repository}:environment:{github_env}",
                        }
                    },
                }
            ],
        }


@pytest.mark.parametrize("env", ENVS)
def test_oidc_provider_created_once_or_looked_up(synth: Synthesized, env: str) -> None:
    ci = synth.env(env).settings.ci
    assert ci is not None
    stack = synth.stack(f"bootstrap-{env}")
    created = stack["resource"].get("aws_iam_openid_connect_provider", {})
    looked_up = stack.get("data", {}).get("aws_iam_openid_connect_provider", {})
    if ci.oidc_provider == "create":
        assert created["github"]["url"] == "https://token.actions.githubusercontent.com"
        assert created["github"]["client_id_list"] == ["sts.amazonaws.com"]
        assert created["github"]["lifecycle"] == {"prevent_destroy": True}
        assert not looked_up
    else:
        assert not created
        arn = looked_up["github"]["arn"]
        assert arn.endswith(":oidc-provider/token.actions.githubusercontent.com")


@pytest.mark.parametrize("env", ENVS)
def test_deploy_role_cannot_reach_the_bootstrap_stack(synth: Synthesized, env: str) -> None:
    names = synth.env(env).names.bootstrap
    write = policy(synth, env, "ci_deploy_write")
    write["Statement"] += policy(synth, env, "ci_deploy_network")["Statement"]
    bootstrap_names = (names.state_bucket, names.lock_table, names.plan_role, names.deploy_role, "tf-backend")
    for statement in write["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        resources = statement["Resource"]
        for arn in [resources] if isinstance(resources, str) else resources:
            assert not any(n in arn for n in bootstrap_names), (statement["Sid"], arn)
            named = re.search(r"mlopspltf-[a-z0-9]+-[a-z]+", arn)
            assert named is None or named.group(0) == f"{naming.resource_prefix(env)}-mlflow", arn
    creates = next(s for s in write["Statement"] if s["Sid"] == "MlflowRolesCarryTheBoundary")
    assert creates["Condition"] == {
        "ArnEquals": {
            "iam:PermissionsBoundary": f"arn:${{data.aws_partition.state_key_partition.partition}}:iam::${{data.aws_caller_identity.state_key_account.account_id}}:policy/{names.workload_boundary}"
        }
    }
    assert "iam:CreateRole" not in actions_of(
        {"Statement": [s for s in write["Statement"] if s["Sid"] != "MlflowRolesCarryTheBoundary"]}
    )
    denied = actions_of(write, "Deny")
    assert {"iam:DeleteRolePermissionsBoundary", "iam:CreatePolicyVersion"} <= denied


@pytest.mark.parametrize("env", ENVS)
def test_every_role_the_deploy_role_creates_carries_the_boundary(synth: Synthesized, env: str) -> None:
    roles = synth.resources(f"mlflow-{env}", "aws_iam_role")
    assert roles
    boundary = f"policy/{naming.workload_boundary(env)}"
    for name, role in roles.items():
        assert role.get("permissions_boundary", "").endswith(boundary), name


@pytest.mark.parametrize("env", ENVS)
def test_policies_fit_iam_size_limits(synth: Synthesized, env: str) -> None:
    """A managed policy holds at most 6,144 characters, whitespace not counted (IAM quotas)."""
    stack = f"bootstrap-{env}"
    doc = synth.stack(stack)
    for address in doc["resource"]["aws_iam_policy"]:
        text = iam_policies._substitute(doc["resource"]["aws_iam_policy"][address]["policy"], doc)
        size = len(re.sub(r"\s", "", text))
        assert size <= 6144, (address, size)


def test_every_customer_key_is_protected_or_says_why(synth: Synthesized) -> None:
    for stack in synth.stack_names():
        for name, key in synth.resources(stack, "aws_kms_key").items():
            assert key.get("lifecycle") == {"prevent_destroy": True}, f"{stack}: aws_kms_key.{name}"
    with pytest.raises(ValueError, match="unprotected_because"):
        CustomerKeyProps(address="scratch", alias="alias/x", description="x", account=ACCOUNT, protect=False)
    CustomerKeyProps(
        address="scratch",
        alias="alias/x",
        description="x",
        account=ACCOUNT,
        protect=False,
        unprotected_because="test",
    )


def test_two_environments_of_one_account_cannot_both_create_the_provider() -> None:
    files = ConfigFiles()
    for env in ("dev", "prd"):
        files.set(f"env_specific_vars/{env}.tfvars", "aws_account_id", "480923715562")
    messages = [str(p) for p in files.problems()]
    assert [m for m in messages if "ci.oidc_provider" in m] == [
        "env_specific_vars/prd.tfvars: ci.oidc_provider: environment 'dev' (env_specific_vars/dev.tfvars) "
        'already creates the GitHub OIDC provider of account 480923715562: use "existing" here'
    ]
    files.set("env_specific_vars/prd.tfvars", "ci.oidc_provider", "existing")
    assert not [p for p in files.problems() if p.key == "ci.oidc_provider"] if _has_problems(files) else True


@pytest.mark.parametrize(
    "value", ["mlops-infra", "-acme/infra", "acme-/infra", "ac--me/infra", "acme/..", "acme/in fra", "a/b/c"]
)
def test_repository_must_be_owner_slash_name(value: str) -> None:
    files = ConfigFiles().set("env_specific_vars/dev.tfvars", "ci.github_repository", value)
    [problem] = files.problems()
    assert str(problem).startswith("env_specific_vars/dev.tfvars: ci.github_repository: ")
    assert "owner/name" in str(problem)


def _has_problems(files: ConfigFiles) -> bool:
    try:
        files.load()
    except ConfigError:
        return True
    return False
