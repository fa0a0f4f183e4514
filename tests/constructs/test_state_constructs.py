"""Each construct synthesized alone in a bare stack: what it creates, nothing more."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cdktf import App, TerraformStack
from cdktf import Testing as CdktfTesting  # aliased: pytest would collect a class named Test*

from constructs_lib.account import Account, account_data
from constructs_lib.aws_provider import aws_provider
from constructs_lib.encryption import CustomerKey, CustomerKeyProps, KeyUsers, service_statements
from constructs_lib.state_backend import local_backend, s3_backend
from constructs_lib.state_storage import LockTable, LockTableProps, StateBucket, StateBucketProps
from platform_config.backend import BackendSettings


def bare_stack() -> TerraformStack:
    stack = TerraformStack(App(), "unit")
    aws_provider(stack, "eu-west-1", {"Project": "unit"})
    return stack


def synth(stack: TerraformStack) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CdktfTesting.synth(stack))
    return data


def test_customer_key() -> None:
    stack = bare_stack()
    account = account_data(stack, "demo_account", "demo_partition")
    CustomerKey(
        stack,
        "k",
        CustomerKeyProps(
            address="demo",
            alias="alias/demo",
            description="demo key",
            account=account,
            deletion_window_days=7,
            extra_statements=(
                {"Sid": "Logs", "Effect": "Allow", "Principal": {"Service": "logs.amazonaws.com"}},
            ),
        ),
    )
    out = synth(stack)
    assert set(out["resource"]) == {"aws_kms_key", "aws_kms_alias"}
    # The key uses the account handle it is given: it declares no data source of its own.
    assert {rtype: list(items) for rtype, items in out["data"].items()} == {
        "aws_caller_identity": ["demo_account"],
        "aws_partition": ["demo_partition"],
    }
    key = out["resource"]["aws_kms_key"]["demo"]
    assert key["enable_key_rotation"] is True
    assert key["deletion_window_in_days"] == 7
    policy = json.loads(key["policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["AccountRootAdministers", "Logs"]
    assert policy["Statement"][0]["Principal"] == {
        "AWS": "arn:${data.aws_partition.demo_partition.partition}:iam::"
        "${data.aws_caller_identity.demo_account.account_id}:root"
    }
    assert out["resource"]["aws_kms_alias"]["demo"]["name"] == "alias/demo"


def test_service_statements_follow_the_list_of_services() -> None:
    account = Account(account_id="111122223333", partition="aws")
    slr = "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    users = KeyUsers(account, "eu-west-1", slr)
    sids = {
        service: [s["Sid"] for s in service_statements((service,), users)]
        for service in ("logs", "cloudwatch", "autoscaling")
    }
    assert sids == {
        "logs": ["CloudWatchLogsEncryptsThisAccountsLogGroups"],
        "cloudwatch": ["CloudWatchAlarmsPublishToEncryptedTopic"],
        "autoscaling": ["AutoScalingUsesKeyForVolumesAndNotifications", "AutoScalingCreatesGrantsForVolumes"],
    }
    [logs] = service_statements(("logs",), users)
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == (
        "arn:aws:logs:eu-west-1:111122223333:log-group:*"
    )
    both = service_statements(("cloudwatch", "logs"), users)
    assert [s["Sid"] for s in both] == sids["cloudwatch"] + sids["logs"]
    # Confused deputy: CloudWatch uses the key only for this account's alarms (fix 10).
    [alarms] = service_statements(("cloudwatch",), users)
    assert alarms["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "111122223333"},
        "ArnLike": {"aws:SourceArn": "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:*"},
    }
    # The auto scaling statements name the role handed in (created or read by the stack).
    assert {s["Principal"]["AWS"] for s in service_statements(("autoscaling",), users)} == {slr}
    with pytest.raises(ValueError, match="autoscaling_service_role"):
        service_statements(("autoscaling",), KeyUsers(account, "eu-west-1"))


def test_state_bucket_alone() -> None:
    stack = bare_stack()
    StateBucket(
        stack,
        "b",
        StateBucketProps(
            name="bucket-x",
            sse_algorithm="aws:kms",
            kms_key_arn="arn:aws:kms:eu-west-1:111122223333:key/k",
            noncurrent_version_expiration_days=30,
            abort_incomplete_multipart_upload_days=2,
            replicated=False,
        ),
    )
    out = synth(stack)
    assert sorted(out["resource"]) == [
        "aws_s3_bucket",
        "aws_s3_bucket_lifecycle_configuration",
        "aws_s3_bucket_ownership_controls",
        "aws_s3_bucket_policy",
        "aws_s3_bucket_public_access_block",
        "aws_s3_bucket_server_side_encryption_configuration",
        "aws_s3_bucket_versioning",
    ]
    assert all(list(v) == ["state"] for v in out["resource"].values())
    rule = out["resource"]["aws_s3_bucket_lifecycle_configuration"]["state"]["rule"][0]
    assert rule["noncurrent_version_expiration"] == [{"noncurrent_days": 30}]
    assert rule["abort_incomplete_multipart_upload"] == [{"days_after_initiation": 2}]
    sse = out["resource"]["aws_s3_bucket_server_side_encryption_configuration"]["state"]["rule"][0]
    assert sse["apply_server_side_encryption_by_default"]["kms_master_key_id"].endswith(":key/k")


def test_lock_table_alone() -> None:
    stack = bare_stack()
    LockTable(
        stack, "t", LockTableProps(name="locks", kms_key_arn="arn:aws:kms:eu-west-1:111122223333:key/k")
    )
    out = synth(stack)
    assert list(out["resource"]) == ["aws_dynamodb_table"]
    table = out["resource"]["aws_dynamodb_table"]["lock"]
    assert (table["name"], table["hash_key"], table["billing_mode"]) == ("locks", "LockID", "PAY_PER_REQUEST")


def test_s3_backend_from_settings() -> None:
    stack = TerraformStack(App(), "unit")
    settings = BackendSettings.model_validate(
        {
            "bucket": "b",
            "region": "eu-west-1",
            "encrypt": True,
            "dynamodb_table": "t",
            "use_lockfile": True,
            "assume_role": {"role_arn": "arn:aws:iam::111122223333:role/tf"},
            "endpoints": {"s3": "http://127.0.0.1:9"},
            "use_path_style": True,
        }
    )
    s3_backend(stack, settings.terraform_attributes(), "mlflow")
    backend = synth(stack)["terraform"]["backend"]
    assert backend == {
        "s3": {
            "bucket": "b",
            "key": "mlopspltf_infra/mlflow/terraform.tfstate",
            "region": "eu-west-1",
            "encrypt": True,
            "dynamodb_table": "t",
            "use_lockfile": True,
            "assume_role": {"role_arn": "arn:aws:iam::111122223333:role/tf"},
            "endpoints": {"s3": "http://127.0.0.1:9"},
            "use_path_style": True,
        }
    }


def test_local_backend_lives_outside_cdktf_out() -> None:
    stack = TerraformStack(App(), "unit")
    local_backend(stack, "bootstrap", "qa")
    assert synth(stack)["terraform"]["backend"] == {
        "local": {"path": "../../../local_state/bootstrap-qa.tfstate"}
    }
