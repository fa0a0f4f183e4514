"""bootstrap-<env>: the state bucket and lock table, property by property, plus snapshots."""

from __future__ import annotations

import json
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from platform_config import naming
from platform_config.loader import Environment
from tests.conftest import Check, Synthesized, shipped_env_names
from tests.fixtures.envs import ConfigFiles


def one(synth: Synthesized, stack: str, rtype: str) -> dict[str, Any]:
    resources = synth.resources(stack, rtype)
    assert list(resources) == ["state"] or list(resources) == ["lock"], (rtype, list(resources))
    return next(iter(resources.values()))


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("env", shipped_env_names())
def test_snapshot(synth: Synthesized, env: str, snapshot_json: SnapshotAssertion) -> None:
    assert synth.stack(f"bootstrap-{env}") == snapshot_json


def check_resource_addresses(synth: Synthesized, e: Environment) -> None:
    env = e.name
    resources = synth.stack(f"bootstrap-{env}")["resource"]
    addresses = sorted(f"{rtype}.{name}" for rtype, items in resources.items() for name in items)
    assert addresses == [
        "aws_dynamodb_table.lock",
        "aws_kms_alias.state",
        "aws_kms_key.state",
        "aws_s3_bucket.state",
        "aws_s3_bucket_lifecycle_configuration.state",
        "aws_s3_bucket_ownership_controls.state",
        "aws_s3_bucket_policy.state",
        "aws_s3_bucket_public_access_block.state",
        "aws_s3_bucket_server_side_encryption_configuration.state",
        "aws_s3_bucket_versioning.state",
    ]


def check_state_bucket(synth: Synthesized, e: Environment) -> None:
    env = e.name
    stack = f"bootstrap-{env}"
    bucket = one(synth, stack, "aws_s3_bucket")
    assert bucket["bucket"] == e.names.bootstrap.state_bucket == f"mlopspltf-{env}-s3-tf-backend"
    assert bucket["force_destroy"] is False
    assert bucket["lifecycle"] == {"prevent_destroy": True}

    versioning = one(synth, stack, "aws_s3_bucket_versioning")
    assert versioning["versioning_configuration"] == {"status": "Enabled"}

    [rule] = one(synth, stack, "aws_s3_bucket_server_side_encryption_configuration")["rule"]
    assert rule["apply_server_side_encryption_by_default"] == {
        "sse_algorithm": "aws:kms",
        "kms_master_key_id": "${aws_kms_key.state.arn}",
    }
    assert rule["bucket_key_enabled"] is True

    block = one(synth, stack, "aws_s3_bucket_public_access_block")
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert block[flag] is True, flag

    ownership = one(synth, stack, "aws_s3_bucket_ownership_controls")
    assert ownership["rule"] == {"object_ownership": "BucketOwnerEnforced"}


def check_state_bucket_policy_denies_plain_http_and_unencrypted_puts(
    synth: Synthesized, e: Environment
) -> None:
    env = e.name
    policy = json.loads(one(synth, f"bootstrap-{env}", "aws_s3_bucket_policy")["policy"])
    sse_algorithm = e.settings.state_bucket.sse_algorithm
    statements = {s["Sid"]: s for s in policy["Statement"]}
    tls = statements["DenyInsecureTransport"]
    assert (tls["Effect"], tls["Principal"], tls["Action"]) == ("Deny", "*", "s3:*")
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert tls["Resource"] == ["${aws_s3_bucket.state.arn}", "${aws_s3_bucket.state.arn}/*"]
    sse = statements["DenyUnencryptedObjectUploads"]
    assert (sse["Effect"], sse["Action"]) == ("Deny", "s3:PutObject")
    assert sse["Condition"] == {"StringNotEquals": {"s3:x-amz-server-side-encryption": sse_algorithm}}


def check_state_bucket_lifecycle_comes_from_env_file(synth: Synthesized, e: Environment) -> None:
    env = e.name
    settings = e.settings.state_bucket
    [rule] = one(synth, f"bootstrap-{env}", "aws_s3_bucket_lifecycle_configuration")["rule"]
    assert rule["status"] == "Enabled"
    assert rule["filter"] == [{"prefix": ""}]
    assert rule["noncurrent_version_expiration"] == [
        {"noncurrent_days": settings.noncurrent_version_expiration_days}
    ]
    assert rule["abort_incomplete_multipart_upload"] == [
        {"days_after_initiation": settings.abort_incomplete_multipart_upload_days}
    ]


def check_lock_table(synth: Synthesized, e: Environment) -> None:
    env = e.name
    table = one(synth, f"bootstrap-{env}", "aws_dynamodb_table")
    assert table["name"] == e.names.bootstrap.lock_table == f"mlopspltf-{env}-ddb-tf-backend"
    assert table["billing_mode"] == "PAY_PER_REQUEST"
    assert table["hash_key"] == "LockID"
    assert table["attribute"] == [{"name": "LockID", "type": "S"}]
    assert table["server_side_encryption"] == {"enabled": True, "kms_key_arn": "${aws_kms_key.state.arn}"}
    assert table["point_in_time_recovery"] == {"enabled": True}
    assert table["deletion_protection_enabled"] is True
    assert table["lifecycle"] == {"prevent_destroy": True}


def check_kms_key_rotates(synth: Synthesized, e: Environment) -> None:
    env = e.name
    key = synth.resources(f"bootstrap-{env}", "aws_kms_key")["state"]
    assert key["enable_key_rotation"] is True
    assert key["deletion_window_in_days"] == 30
    alias = synth.resources(f"bootstrap-{env}", "aws_kms_alias")["state"]
    assert alias["name"] == naming.state_kms_alias(env)
    assert alias["target_key_id"] == "${aws_kms_key.state.key_id}"


def check_outputs(synth: Synthesized, e: Environment) -> None:
    env = e.name
    outputs = synth.stack(f"bootstrap-{env}")["output"]
    assert set(outputs) == {
        "state_bucket_name",
        "state_bucket_arn",
        "lock_table_name",
        "lock_table_arn",
        "kms_key_arn",
        "region",
        "state_access_policy_json",
    }
    assert all(o["description"] for o in outputs.values())
    assert outputs["region"]["value"] == e.settings.aws_region
    assert outputs["kms_key_arn"]["value"] == "${aws_kms_key.state.arn}"


def check_state_access_policy_is_least_privilege(synth: Synthesized, e: Environment) -> None:
    env = e.name
    policy = json.loads(synth.stack(f"bootstrap-{env}")["output"]["state_access_policy_json"]["value"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    assert all("*" not in json.dumps(s["Action"]) for s in policy["Statement"])
    assert by_sid["ListStateBucket"]["Action"] == "s3:ListBucket"
    assert by_sid["ListStateBucket"]["Resource"] == "${aws_s3_bucket.state.arn}"
    objects = by_sid["ReadWriteStateAndLockFiles"]
    assert objects["Action"] == ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    # The prefix covers every stack's state and its .tflock file, and nothing else in the bucket.
    assert objects["Resource"] == "${aws_s3_bucket.state.arn}/mlopspltf_infra/*"
    for kind in naming.STACK_KINDS:
        assert naming.state_key(kind).startswith("mlopspltf_infra/")
    assert by_sid["DynamoDBLocking"]["Action"] == [
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
    ]
    assert by_sid["DynamoDBLocking"]["Resource"] == "${aws_dynamodb_table.lock.arn}"
    assert by_sid["StateEncryption"]["Action"] == ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
    assert by_sid["StateEncryption"]["Resource"] == "${aws_kms_key.state.arn}"


def check_default_tags_on_provider(synth: Synthesized, e: Environment) -> None:
    [provider] = synth.stack(f"bootstrap-{e.name}")["provider"]["aws"]
    assert provider["region"] == e.settings.aws_region
    [tags] = provider["default_tags"]
    assert tags["tags"] == {
        "Project": "mlopspltf",
        "Environment": e.name,
        "Stack": f"bootstrap-{e.name}",
        "ManagedBy": "cdktf",
        "Repository": "mlops-infra",
        **e.settings.tags,
    }


def check_no_duplicate_data_sources(synth: Synthesized, e: Environment) -> None:
    data = synth.stack(f"bootstrap-{e.name}")["data"]
    assert {rtype: list(items) for rtype, items in data.items()} == {
        "aws_caller_identity": ["state_key_account"],
        "aws_partition": ["state_key_partition"],
    }


def test_aes256_option(synth_with: Any) -> None:
    files = ConfigFiles()
    files.sub(
        "env_specific_vars/dev.tfvars",
        r'sse_algorithm                          = "aws:kms"',
        'sse_algorithm = "AES256"',
    )
    files.sub("backend_configs/dev.config", r"^kms_key_id .*$", "")
    envs = [e for e in files.load() if e.name == "dev"]
    out: Synthesized = synth_with(envs, ("bootstrap",))
    [rule] = out.resources("bootstrap-dev", "aws_s3_bucket_server_side_encryption_configuration")["state"][
        "rule"
    ]
    assert rule["apply_server_side_encryption_by_default"] == {"sse_algorithm": "AES256"}
    assert rule["bucket_key_enabled"] is False
    policy = json.loads(out.resources("bootstrap-dev", "aws_s3_bucket_policy")["state"]["policy"])
    deny_sse = next(s for s in policy["Statement"] if s["Sid"] == "DenyUnencryptedObjectUploads")
    assert deny_sse["Condition"]["StringNotEquals"] == {"s3:x-amz-server-side-encryption": "AES256"}
    # The lock table still uses the customer key.
    table = out.resources("bootstrap-dev", "aws_dynamodb_table")["lock"]
    assert table["server_side_encryption"]["kms_key_arn"] == "${aws_kms_key.state.arn}"


# Every check above, on every shipped environment (tests/stacks/test_new_environment.py runs them on
# a temporary new one).
CHECKS: tuple[Check, ...] = (
    check_resource_addresses,
    check_state_bucket,
    check_state_bucket_policy_denies_plain_http_and_unencrypted_puts,
    check_state_bucket_lifecycle_comes_from_env_file,
    check_lock_table,
    check_kms_key_rotates,
    check_outputs,
    check_state_access_policy_is_least_privilege,
    check_default_tags_on_provider,
    check_no_duplicate_data_sources,
)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("env", shipped_env_names())
def test_bootstrap_stack(synth: Synthesized, env: str, check: Check) -> None:
    check(synth, synth.env(env))
