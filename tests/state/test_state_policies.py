"""The bootstrap's plan policy really cannot write a state; the apply policy can.

moto enforces IAM for S3 once authentication is on (``/moto-api/reset-auth``, the server-side
``INITIAL_NO_AUTH_ACTION_COUNT``), with resource ARNs matched, so the S3 half of both policies is
exercised by real Terraform runs here: plan and lock as the planner, apply as the deployer. moto
evaluates DynamoDB and KMS calls against resource ``*`` and ignores condition keys such as
``dynamodb:LeadingKeys``, so the environment is dev (S3 lockfile only) and the DynamoDB and KMS
statements are asserted as documents in the bootstrap stack test.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from constructs_lib.state_access import state_apply_policy, state_plan_policy
from platform_config import naming
from tests.state.support import COMMITTED, Applier, MotoServer, server_environment, synth_probe, terraform_env

pytestmark = pytest.mark.state

ENV = "dev"
KIND = "mlflow"


def _user(backend: MotoServer, name: str, policy: str) -> dict[str, str]:
    iam = backend.client("iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="state", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


@contextmanager
def iam_enforced(backend: MotoServer) -> Iterator[None]:
    def set_count(value: str) -> None:
        req = urllib.request.Request(
            f"{backend.url}/moto-api/reset-auth",
            data=value.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form body would be parsed away by the server
        )
        urllib.request.urlopen(req, timeout=30).close()

    set_count("0")
    try:
        yield
    finally:
        set_count("inf")


def test_plan_policy_locks_and_reads_but_cannot_write_state(backend: MotoServer, tmp_path: Path) -> None:
    bucket = naming.state_bucket(ENV)
    bucket_arn = f"arn:aws:s3:::{bucket}"
    table_arn = backend.client("dynamodb").describe_table(TableName=naming.lock_table(ENV))["Table"][
        "TableArn"
    ]
    key_arn = backend.client("kms").describe_key(KeyId=naming.state_kms_alias(ENV))["KeyMetadata"]["Arn"]
    planner = _user(backend, "planner", state_plan_policy(bucket_arn, bucket, table_arn, key_arn))
    deployer = _user(backend, "deployer", state_apply_policy(bucket_arn, table_arn, key_arn))

    stack_dir = synth_probe(tmp_path / "repo", server_environment(ENV, backend.url), KIND)
    base_env = terraform_env(tmp_path)
    admin = Applier(stack_dir, base_env)
    admin.init()
    assert admin.apply(COMMITTED).returncode == 0
    stored = backend.state_object(ENV, KIND)

    as_planner = Applier(stack_dir, {**base_env, **planner})
    as_deployer = Applier(stack_dir, {**base_env, **deployer})
    with iam_enforced(backend):
        as_planner.init()
        plan = as_planner.tf.run(
            "plan",
            "-input=false",
            "-no-color",
            "-lock-timeout=0s",
            "-var=round=next",
            "-detailed-exitcode",
            check=False,
        )
        assert plan.returncode == 2, plan.stderr  # changes planned, under the lock
        refused = as_planner.apply("by-the-planner")
        assert refused.returncode != 0
        assert "AccessDenied" in refused.stderr
        deleted = as_planner.tf.run("workspace", "delete", "-force", "default", check=False)
        assert deleted.returncode != 0
        applied = as_deployer.apply("by-the-deployer")
        assert applied.returncode == 0, applied.stderr

    assert stored is not None
    after = json.loads(backend.state_object(ENV, KIND) or b"{}")
    assert after["outputs"]["round_written"]["value"]["round"] == "by-the-deployer"
    assert not backend.lockfile_present(ENV, KIND), "the planner's failed apply left its lock"
