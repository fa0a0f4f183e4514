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


def one(synth: Synthesized, stack: str, rtype: str, name: str = "state") -> dict[str, Any]:
    resource: dict[str, Any] = synth.resources(stack, rtype)[name]
    return resource


def statements(policy_json: str) -> dict[str, dict[str, Any]]:
    policy = json.loads(policy_json)
    assert policy["Version"] == "2012-10-17"
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert len(by_sid) == len(policy["Statement"]), "every statement has its own Sid"
    return by_sid


def replicated(e: Environment) -> bool:
    return e.settings.state_bucket.replication.enabled


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("env", shipped_env_names())
def test_snapshot(synth: Synthesized, env: str, snapshot_json: SnapshotAssertion) -> None:
    assert synth.stack(f"bootstrap-{env}") == snapshot_json


BUCKET_PARTS = (
    "aws_s3_bucket",
    "aws_s3_bucket_lifecycle_configuration",
    "aws_s3_bucket_ownership_controls",
    "aws_s3_bucket_policy",
    "aws_s3_bucket_public_access_block",
    "aws_s3_bucket_server_side_encryption_configuration",
    "aws_s3_bucket_versioning",
)


def check_resource_addresses(synth: Synthesized, e: Environment) -> None:
    resources = synth.stack(f"bootstrap-{e.name}")["resource"]
    addresses = sorted(f"{rtype}.{name}" for rtype, items in resources.items() for name in items)
    expected = [
        "aws_dynamodb_table.lock",
        "aws_kms_alias.state",
        "aws_kms_key.state",
        "aws_s3_bucket_logging.state",
        *(f"{rtype}.{name}" for rtype in BUCKET_PARTS for name in ("state", "state_logs")),
    ]
    if e.settings.ci is not None:
        expected += [f"aws_iam_policy.{p}" for p in CI_POLICIES]
        expected += ["aws_iam_role.ci_plan", "aws_iam_role.ci_deploy"]
        expected += [
            f"aws_iam_role_policy_attachment.ci_plan_{p}" for p in ("ci_describe", "ci_read", "ci_plan_state")
        ]
        expected += [
            f"aws_iam_role_policy_attachment.ci_deploy_{p}"
            for p in ("ci_describe", "ci_read", "ci_deploy_state", "ci_deploy_write", "ci_deploy_network")
        ]
        if e.settings.ci.oidc_provider == "create":
            expected.append("aws_iam_openid_connect_provider.github")
    if replicated(e):
        expected += [
            "aws_iam_role.state_replication",
            "aws_iam_role_policy.state_replication",
            "aws_kms_alias.state_replica",
            "aws_kms_key.state_replica",
            "aws_s3_bucket_replication_configuration.state",
            *(f"{rtype}.state_replica" for rtype in BUCKET_PARTS),
        ]
    assert addresses == sorted(expected)


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
    table = one(synth, f"bootstrap-{env}", "aws_dynamodb_table", "lock")
    assert table["name"] == e.names.bootstrap.lock_table == f"mlopspltf-{env}-ddb-tf-backend"
    assert table["billing_mode"] == "PAY_PER_REQUEST"
    assert table["hash_key"] == "LockID"
    assert table["attribute"] == [{"name": "LockID", "type": "S"}]
    assert table["server_side_encryption"] == {"enabled": True, "kms_key_arn": "${aws_kms_key.state.arn}"}
    assert table["point_in_time_recovery"] == {"enabled": True}
    assert table["deletion_protection_enabled"] is True
    assert table["lifecycle"] == {"prevent_destroy": True}


CI_POLICIES = (
    "workload_boundary",
    "ci_describe",
    "ci_read",
    "ci_plan_state",
    "ci_deploy_state",
    "ci_deploy_write",
    "ci_deploy_network",
)


def check_kms_key_rotates(synth: Synthesized, e: Environment) -> None:
    env = e.name
    key = synth.resources(f"bootstrap-{env}", "aws_kms_key")["state"]
    assert key["lifecycle"] == {"prevent_destroy": True}, "the key of every state is never destroyed"
    assert key["enable_key_rotation"] is True
    assert key["deletion_window_in_days"] == 30
    alias = synth.resources(f"bootstrap-{env}", "aws_kms_alias")["state"]
    assert alias["name"] == naming.state_kms_alias(env)
    assert alias["target_key_id"] == "${aws_kms_key.state.key_id}"


def check_outputs(synth: Synthesized, e: Environment) -> None:
    env = e.name
    outputs = synth.stack(f"bootstrap-{env}")["output"]
    expected = {
        "state_bucket_name",
        "state_bucket_arn",
        "lock_table_name",
        "lock_table_arn",
        "kms_key_arn",
        "region",
        "state_log_bucket_name",
        "state_plan_policy_json",
        "state_apply_policy_json",
    }
    if replicated(e):
        expected |= {"state_replica_bucket_arn", "state_replica_kms_key_arn"}
    if e.settings.ci is not None:
        expected |= {
            "ci_plan_role_arn",
            "ci_deploy_role_arn",
            "ci_oidc_provider_arn",
            "workload_boundary_arn",
        }
    assert set(outputs) == expected
    assert all(o["description"] for o in outputs.values())
    assert outputs["region"]["value"] == e.settings.aws_region
    assert outputs["kms_key_arn"]["value"] == "${aws_kms_key.state.arn}"
    assert outputs["state_log_bucket_name"]["value"] == "${aws_s3_bucket.state_logs.bucket}"


BUCKET = "${aws_s3_bucket.state.arn}"
TABLE = "${aws_dynamodb_table.lock.arn}"
KEY = "${aws_kms_key.state.arn}"


def check_plan_policy_reads_state_and_writes_only_locks(synth: Synthesized, e: Environment) -> None:
    output = synth.stack(f"bootstrap-{e.name}")["output"]["state_plan_policy_json"]["value"]
    lock_items = f"{e.names.bootstrap.state_bucket}/mlopspltf_infra/*/terraform.tfstate"
    assert statements(output) == {
        "ListStateBucket": {
            "Sid": "ListStateBucket",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": BUCKET,
        },
        "ReadStateAndLockFiles": {
            "Sid": "ReadStateAndLockFiles",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"{BUCKET}/mlopspltf_infra/*",
        },
        # Put/Delete only on the lock files: a plan can never overwrite or delete a state.
        "WriteLockFilesOnly": {
            "Sid": "WriteLockFilesOnly",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:DeleteObject"],
            "Resource": f"{BUCKET}/mlopspltf_infra/*.tflock",
        },
        "ReadLockTable": {
            "Sid": "ReadLockTable",
            "Effect": "Allow",
            "Action": ["dynamodb:DescribeTable", "dynamodb:GetItem"],
            "Resource": TABLE,
        },
        # The lock items only, not the "-md5" digest items a state write updates.
        "WriteLockItemsOnly": {
            "Sid": "WriteLockItemsOnly",
            "Effect": "Allow",
            "Action": ["dynamodb:PutItem", "dynamodb:DeleteItem"],
            "Resource": TABLE,
            "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [lock_items]}},
        },
        "StateEncryption": {
            "Sid": "StateEncryption",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": KEY,
        },
    }
    # Every stack's state key is under the prefix the documents name.
    for kind in naming.STACK_KINDS:
        assert naming.state_key(kind).startswith("mlopspltf_infra/")
        assert naming.state_key(kind).endswith("/terraform.tfstate")


def check_apply_policy_reads_and_writes_state(synth: Synthesized, e: Environment) -> None:
    output = synth.stack(f"bootstrap-{e.name}")["output"]["state_apply_policy_json"]["value"]
    assert statements(output) == {
        "ListStateBucket": {
            "Sid": "ListStateBucket",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": BUCKET,
        },
        "ReadWriteStateAndLockFiles": {
            "Sid": "ReadWriteStateAndLockFiles",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": f"{BUCKET}/mlopspltf_infra/*",
        },
        "DynamoDBLocking": {
            "Sid": "DynamoDBLocking",
            "Effect": "Allow",
            "Action": [
                "dynamodb:DescribeTable",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:DeleteItem",
            ],
            "Resource": TABLE,
        },
        # S3 and DynamoDB encrypt with data keys: nothing calls kms:Encrypt.
        "StateEncryption": {
            "Sid": "StateEncryption",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": KEY,
        },
    }


def assert_private_bucket(synth: Synthesized, stack: str, name: str) -> None:
    bucket = one(synth, stack, "aws_s3_bucket", name)
    assert bucket["force_destroy"] is False
    assert bucket["lifecycle"] == {"prevent_destroy": True}
    assert one(synth, stack, "aws_s3_bucket_versioning", name)["versioning_configuration"] == {
        "status": "Enabled"
    }
    block = one(synth, stack, "aws_s3_bucket_public_access_block", name)
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert block[flag] is True, flag
    ownership = one(synth, stack, "aws_s3_bucket_ownership_controls", name)
    assert ownership["rule"] == {"object_ownership": "BucketOwnerEnforced"}
    tls = statements(one(synth, stack, "aws_s3_bucket_policy", name)["policy"])["DenyInsecureTransport"]
    arn = f"${{aws_s3_bucket.{name}.arn}}"
    assert tls["Resource"] == [arn, f"{arn}/*"]
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def check_access_logs(synth: Synthesized, e: Environment) -> None:
    stack = f"bootstrap-{e.name}"
    logs = one(synth, stack, "aws_s3_bucket", "state_logs")
    assert logs["bucket"] == e.names.bootstrap.log_bucket == f"mlopspltf-{e.name}-s3-tf-backend-logs"
    assert_private_bucket(synth, stack, "state_logs")
    # S3 server access logging only delivers to SSE-S3 buckets.
    [sse] = one(synth, stack, "aws_s3_bucket_server_side_encryption_configuration", "state_logs")["rule"]
    assert sse["apply_server_side_encryption_by_default"] == {"sse_algorithm": "AES256"}
    [rule] = one(synth, stack, "aws_s3_bucket_lifecycle_configuration", "state_logs")["rule"]
    assert rule["status"] == "Enabled"
    assert rule["expiration"] == [{"days": e.settings.state_bucket.access_log_expiration_days}]

    logging = one(synth, stack, "aws_s3_bucket_logging")
    assert logging["bucket"] == "${aws_s3_bucket.state.id}"
    assert logging["target_bucket"] == "${aws_s3_bucket.state_logs.id}"
    assert logging["depends_on"] == ["aws_s3_bucket_policy.state_logs"]
    delivery = statements(one(synth, stack, "aws_s3_bucket_policy", "state_logs")["policy"])[
        "S3ServerAccessLogDelivery"
    ]
    assert delivery == {
        "Sid": "S3ServerAccessLogDelivery",
        "Effect": "Allow",
        "Principal": {"Service": "logging.s3.amazonaws.com"},
        "Action": "s3:PutObject",
        "Resource": f"${{aws_s3_bucket.state_logs.arn}}/{logging['target_prefix']}*",
        "Condition": {
            "StringEquals": {"aws:SourceAccount": "${data.aws_caller_identity.state_key_account.account_id}"},
            "ArnLike": {"aws:SourceArn": BUCKET},
        },
    }


def skipped(synth: Synthesized, stack: str, rtype: str, name: str) -> set[str]:
    body = synth.resources(stack, rtype)[name]
    return {s["id"] for s in body.get("//", {}).get("checkov", {}).get("skip", [])}


def check_replication(synth: Synthesized, e: Environment) -> None:
    stack = f"bootstrap-{e.name}"
    replication = e.settings.state_bucket.replication
    if not replication.enabled:
        assert "aws_s3_bucket_replication_configuration" not in synth.stack(stack)["resource"]
        assert [p.get("alias") for p in synth.stack(stack)["provider"]["aws"]] == [None]
        assert "CKV_AWS_144" in skipped(synth, stack, "aws_s3_bucket", "state")
        return
    assert "CKV_AWS_144" not in skipped(synth, stack, "aws_s3_bucket", "state")
    _, replica_provider = synth.stack(stack)["provider"]["aws"]
    assert (replica_provider["alias"], replica_provider["region"]) == ("replica", replication.region)
    assert replication.region != e.settings.aws_region

    # Everything of the replica is in the replica region, protected, and encrypted with its own key.
    names = e.names.bootstrap
    replica_parts = [(rtype, "state_replica") for rtype in BUCKET_PARTS] + [
        ("aws_kms_key", "state_replica"),
        ("aws_kms_alias", "state_replica"),
    ]
    for rtype, name in replica_parts:
        assert one(synth, stack, rtype, name)["provider"] == "aws.replica", rtype
    key = one(synth, stack, "aws_kms_key", "state_replica")
    assert key["enable_key_rotation"] is True
    assert key["lifecycle"] == {"prevent_destroy": True}
    assert one(synth, stack, "aws_kms_alias", "state_replica")["name"] == names.replica_kms_alias
    assert one(synth, stack, "aws_s3_bucket", "state_replica")["bucket"] == names.replica_bucket
    assert_private_bucket(synth, stack, "state_replica")
    [sse] = one(synth, stack, "aws_s3_bucket_server_side_encryption_configuration", "state_replica")["rule"]
    assert sse["apply_server_side_encryption_by_default"] == {
        "sse_algorithm": "aws:kms",
        "kms_master_key_id": "${aws_kms_key.state_replica.arn}",
    }

    config = one(synth, stack, "aws_s3_bucket_replication_configuration")
    assert config["bucket"] == "${aws_s3_bucket.state.id}"
    assert config["role"] == "${aws_iam_role.state_replication.arn}"
    assert config["depends_on"] == [
        "aws_s3_bucket_versioning.state",
        "aws_s3_bucket_versioning.state_replica",
    ]
    [rule] = config["rule"]
    assert rule["status"] == "Enabled"
    assert rule["filter"] == {"prefix": ""}
    assert rule["delete_marker_replication"] == {"status": "Enabled"}
    assert rule["source_selection_criteria"] == {"sse_kms_encrypted_objects": {"status": "Enabled"}}
    assert rule["destination"] == {
        "bucket": "${aws_s3_bucket.state_replica.arn}",
        "storage_class": "STANDARD",
        "encryption_configuration": {"replica_kms_key_id": "${aws_kms_key.state_replica.arn}"},
    }


def check_replication_role_is_least_privilege(synth: Synthesized, e: Environment) -> None:
    stack = f"bootstrap-{e.name}"
    if not e.settings.state_bucket.replication.enabled:
        assert "state_replication" not in synth.stack(stack)["resource"].get("aws_iam_role", {})
        return
    role = one(synth, stack, "aws_iam_role", "state_replication")
    assert role["name"] == e.names.bootstrap.replication_role
    [trust] = json.loads(role["assume_role_policy"])["Statement"]
    assert trust["Principal"] == {"Service": "s3.amazonaws.com"}
    assert trust["Condition"]["ArnLike"] == {"aws:SourceArn": BUCKET}
    policy = one(synth, stack, "aws_iam_role_policy", "state_replication")
    assert policy["role"] == "${aws_iam_role.state_replication.id}"
    replica = "${aws_s3_bucket.state_replica.arn}"
    source_region, replica_region = e.settings.aws_region, e.settings.state_bucket.replication.region
    by_sid = statements(policy["policy"])
    assert {sid: (s["Action"], s["Resource"]) for sid, s in by_sid.items()} == {
        "ReadSourceReplicationConfiguration": (["s3:GetReplicationConfiguration", "s3:ListBucket"], BUCKET),
        "ReadSourceVersions": (
            ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"],
            f"{BUCKET}/*",
        ),
        "WriteReplicas": (["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"], f"{replica}/*"),
        "DecryptSource": ("kms:Decrypt", KEY),
        "EncryptReplica": (["kms:Encrypt", "kms:GenerateDataKey"], "${aws_kms_key.state_replica.arn}"),
    }
    assert by_sid["DecryptSource"]["Condition"]["StringEquals"] == {
        "kms:ViaService": f"s3.{source_region}.amazonaws.com"
    }
    assert by_sid["EncryptReplica"]["Condition"]["StringEquals"] == {
        "kms:ViaService": f"s3.{replica_region}.amazonaws.com"
    }
    assert by_sid["EncryptReplica"]["Condition"]["StringLike"] == {
        "kms:EncryptionContext:aws:s3:arn": [replica, f"{replica}/*"]
    }


def check_default_tags_on_provider(synth: Synthesized, e: Environment) -> None:
    providers = synth.stack(f"bootstrap-{e.name}")["provider"]["aws"]
    assert providers[0]["region"] == e.settings.aws_region
    for provider in providers:  # the replica region's provider too
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
    expected = {"aws_caller_identity": ["state_key_account"], "aws_partition": ["state_key_partition"]}
    if e.settings.ci is not None and e.settings.ci.oidc_provider == "existing":
        expected["aws_iam_openid_connect_provider"] = ["github"]
    assert {rtype: list(items) for rtype, items in data.items()} == expected


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
    check_plan_policy_reads_state_and_writes_only_locks,
    check_apply_policy_reads_and_writes_state,
    check_access_logs,
    check_replication,
    check_replication_role_is_least_privilege,
    check_default_tags_on_provider,
    check_no_duplicate_data_sources,
)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("env", shipped_env_names())
def test_bootstrap_stack(synth: Synthesized, env: str, check: Check) -> None:
    check(synth, synth.env(env))
