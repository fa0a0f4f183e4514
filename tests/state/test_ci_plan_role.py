"""The synthesized plan role, assumed on the local AWS-compatible server with IAM enforced: a real
Terraform plan takes and releases the lock, an apply and a workspace delete are refused, and the
refresh reads of the bootstrap stack's types pass while their writes are refused.

The role is made on moto from ``bootstrap-dev``'s own synthesized policies (``ci_describe``,
``ci_read``, ``ci_plan_state``), with the references replaced by the server's real ARNs, and
assumed with sts:AssumeRole (moto's AssumeRoleWithWebIdentity checks no token: the trust is proved
by tests/stacks/test_ci_trust.py). moto matches resource ARNs for S3 only and ignores condition
keys (moto/iam/access_control.py); the other services are checked by action here and by resource
and condition in the simulator test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from constructs_lib.ci_read_actions import READS
from platform_config import naming
from tests.conftest import Synthesized
from tests.state.support import COMMITTED, Applier, MotoServer, server_environment, synth_probe, terraform_env
from tests.state.test_state_policies import iam_enforced

pytestmark = pytest.mark.state

ENV = "dev"
KIND = "mlflow"
ACCOUNT = "123456789012"  # moto's default account


def real_policies(synth: Synthesized, backend: MotoServer) -> dict[str, str]:
    """The plan role's policies of bootstrap-dev with every reference replaced by the server's ARN."""
    stack = synth.stack(f"bootstrap-{ENV}")
    table_arn = backend.client("dynamodb").describe_table(TableName=naming.lock_table(ENV))["Table"][
        "TableArn"
    ]
    key_arn = backend.client("kms").describe_key(KeyId=naming.state_kms_alias(ENV))["KeyMetadata"]["Arn"]
    values = {
        "aws_s3_bucket.state.arn": f"arn:aws:s3:::{naming.state_bucket(ENV)}",
        "aws_dynamodb_table.lock.arn": table_arn,
        "aws_kms_key.state.arn": key_arn,
        "data.aws_caller_identity.state_key_account.account_id": ACCOUNT,
        "data.aws_partition.state_key_partition.partition": "aws",
    }
    out = {}
    for address in ("ci_describe", "ci_read", "ci_plan_state"):
        text = stack["resource"]["aws_iam_policy"][address]["policy"]
        out[address] = re.sub(r"\$\{([^}]*)\}", lambda m: values[m.group(1)], text)
    return out


def assume_plan_role(backend: MotoServer, policies: dict[str, str]) -> dict[str, str]:
    iam = backend.client("iam")
    role = iam.create_role(
        RoleName=naming.ci_role(ENV, "plan"),
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}],
            }
        ),
    )["Role"]
    for name, document in policies.items():
        arn = iam.create_policy(PolicyName=f"{naming.resource_prefix(ENV)}-{name}", PolicyDocument=document)[
            "Policy"
        ]["Arn"]
        iam.attach_role_policy(RoleName=role["RoleName"], PolicyArn=arn)
    creds = backend.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="ci")["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
    }


def client_as(backend: MotoServer, service: str, creds: dict[str, str]) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=backend.url,
        region_name="us-east-1",
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=creds["AWS_SESSION_TOKEN"],
    )


def denied(call: Any, *args: Any, **kwargs: Any) -> bool:
    from botocore.exceptions import ClientError

    try:
        call(*args, **kwargs)
    except ClientError as exc:
        # moto answers JSON-protocol services' denials in XML: botocore then reports code "403".
        status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
        return status == 403 and "AccessDenied" in str(exc)
    return False


def test_plan_role_plans_under_the_lock_and_writes_nothing(
    backend: MotoServer, synth: Synthesized, tmp_path: Path
) -> None:
    policies = real_policies(synth, backend)
    stack_dir = synth_probe(tmp_path / "repo", server_environment(ENV, backend.url), KIND)
    base_env = terraform_env(tmp_path)
    admin = Applier(stack_dir, base_env)
    admin.init()
    assert admin.apply(COMMITTED).returncode == 0
    stored = backend.state_object(ENV, KIND)
    creds = assume_plan_role(backend, policies)
    planner = Applier(stack_dir, {**base_env, **creds})
    bucket = naming.state_bucket(ENV)
    key_id = backend.client("kms").describe_key(KeyId=naming.state_kms_alias(ENV))["KeyMetadata"]["KeyId"]

    with iam_enforced(backend):
        planner.init()
        plan = planner.tf.run(
            "plan",
            "-input=false",
            "-no-color",
            "-lock-timeout=0s",
            "-var=round=next",
            "-detailed-exitcode",
            check=False,
        )
        assert plan.returncode == 2, plan.stderr  # changes planned, under the lock
        refused = planner.apply("by-the-plan-role")
        assert refused.returncode != 0
        assert "AccessDenied" in refused.stderr
        assert planner.tf.run("workspace", "delete", "-force", "default", check=False).returncode != 0

        s3 = client_as(backend, "s3", creds)
        dynamodb = client_as(backend, "dynamodb", creds)
        kms = client_as(backend, "kms", creds)
        iam = client_as(backend, "iam", creds)
        # The refresh reads of the state bucket pass (moto matches S3 resources; other services'
        # scoped reads are evaluated against "*" there, so they are proved by the simulator test).
        s3.list_objects_v2(Bucket=bucket, Prefix=naming.STATE_KEY_PREFIX)
        s3.get_bucket_versioning(Bucket=bucket)
        s3.get_bucket_acl(Bucket=bucket)
        kms.list_aliases()  # Resource "*" by nature
        # ... and every write of them is refused.
        writes: dict[str, tuple[Any, dict[str, Any]]] = {
            "s3:PutBucketPolicy": (s3.put_bucket_policy, {"Bucket": bucket, "Policy": "{}"}),
            "s3:PutObject (state)": (
                s3.put_object,
                {"Bucket": bucket, "Key": naming.state_key(KIND), "Body": b"{}"},
            ),
            "s3:DeleteObject (state)": (s3.delete_object, {"Bucket": bucket, "Key": naming.state_key(KIND)}),
            "s3:DeleteBucket": (s3.delete_bucket, {"Bucket": bucket}),
            "dynamodb:DeleteTable": (dynamodb.delete_table, {"TableName": naming.lock_table(ENV)}),
            "kms:ScheduleKeyDeletion": (kms.schedule_key_deletion, {"KeyId": key_id}),
            "kms:PutKeyPolicy": (
                kms.put_key_policy,
                {"KeyId": key_id, "PolicyName": "default", "Policy": "{}"},
            ),
            "iam:CreateRole": (iam.create_role, {"RoleName": "x", "AssumeRolePolicyDocument": "{}"}),
            "iam:AttachRolePolicy": (
                iam.attach_role_policy,
                {
                    "RoleName": naming.ci_role(ENV, "plan"),
                    "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess",
                },
            ),
        }
        allowed = [name for name, (call, kwargs) in writes.items() if not denied(call, **kwargs)]
        assert not allowed, f"the plan role could: {allowed}"

    after = backend.state_object(ENV, KIND)
    assert after == stored, "the state is unchanged"
    assert not backend.lockfile_present(ENV, KIND), "the plan released its lock"
    assert {"s3:ListBucket", "s3:GetBucketVersioning", "s3:GetBucketAcl"} <= set(
        READS["aws_s3_bucket"].actions
    )
