"""The Terraform state bucket and lock table of one environment (the bootstrap stack's content)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.dynamodb_table import (
    DynamodbTable,
    DynamodbTableAttribute,
    DynamodbTablePointInTimeRecovery,
    DynamodbTableServerSideEncryption,
)
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from cdktf_cdktf_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA,
)
from cdktf_cdktf_provider_aws.s3_bucket_versioning import S3BucketVersioningA
from constructs import Construct

from constructs_lib.policy import skip_checks
from constructs_lib.storage import Bucket, deny_insecure_transport, lifecycle_rule, private_bucket

PROTECTED = TerraformResourceLifecycle(prevent_destroy=True)
NO_EVENTS = "nothing consumes state bucket events; Terraform reads and writes the objects directly"


def state_encryption(
    scope: Construct, address: str, bucket_id: str, sse_algorithm: str, kms_key_arn: str
) -> None:
    """Default encryption at ``<type>.<address>``: SSE-KMS with ``kms_key_arn`` and a bucket key,
    or AES256."""
    kms = sse_algorithm == "aws:kms"
    S3BucketServerSideEncryptionConfigurationA(
        scope,
        "encryption",
        bucket=bucket_id,
        rule=[
            S3BucketServerSideEncryptionConfigurationRuleA(
                apply_server_side_encryption_by_default=(
                    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                        sse_algorithm=sse_algorithm,
                        kms_master_key_id=kms_key_arn if kms else None,
                    )
                ),
                bucket_key_enabled=kms,
            )
        ],
    ).override_logical_id(address)


def state_retention(
    scope: Construct, address: str, bucket_id: str, noncurrent_days: int, abort_incomplete_days: int
) -> None:
    """Lifecycle at ``<type>.<address>``: old state versions expire, incomplete uploads are aborted."""
    lifecycle_rule(
        scope,
        address,
        bucket_id,
        rule_id="expire-noncurrent-state-versions",
        noncurrent_days=noncurrent_days,
        abort_incomplete_days=abort_incomplete_days,
    )


@dataclass(frozen=True)
class StateBucketProps:
    name: str
    sse_algorithm: str  # "aws:kms" (with kms_key_arn) or "AES256"
    kms_key_arn: str
    noncurrent_version_expiration_days: int
    abort_incomplete_multipart_upload_days: int
    replicated: bool  # False: CKV_AWS_144 is acknowledged here, with the reason


class StateBucket(Bucket):
    """Versioned, encrypted, private S3 bucket for state files (``aws_s3_bucket.state``)."""

    def __init__(self, scope: Construct, construct_id: str, props: StateBucketProps) -> None:
        super().__init__(scope, construct_id)
        sse_algorithm, kms_key_arn = props.sse_algorithm, props.kms_key_arn
        self._bucket = S3Bucket(self, "bucket", bucket=props.name, force_destroy=False, lifecycle=PROTECTED)
        self._bucket.override_logical_id("state")
        bucket_id = self._bucket.id
        skips = {"CKV2_AWS_62": NO_EVENTS}
        if not props.replicated:
            skips["CKV_AWS_144"] = (
                "state_bucket.replication is off in this non-production environment: versioning "
                "keeps every state version; production replicates to another region"
            )
        skip_checks(self._bucket, skips)

        self._versioning = private_bucket(self, "state", self._bucket)

        state_encryption(self, "state", bucket_id, sse_algorithm, kms_key_arn)
        state_retention(
            self,
            "state",
            bucket_id,
            props.noncurrent_version_expiration_days,
            props.abort_incomplete_multipart_upload_days,
        )

        arn = self._bucket.arn
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                deny_insecure_transport(arn),
                {
                    # Terraform sends this header on every state and .tflock write when
                    # encrypt = true (with kms_key_id for aws:kms); anything else is refused.
                    "Sid": "DenyUnencryptedObjectUploads",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:PutObject",
                    "Resource": f"{arn}/*",
                    "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": sse_algorithm}},
                },
            ],
        }
        S3BucketPolicy(self, "policy", bucket=bucket_id, policy=json.dumps(policy)).override_logical_id(
            "state"
        )

    @property
    def versioning(self) -> S3BucketVersioningA:
        """Replication may only be configured once versioning is on."""
        return self._versioning


@dataclass(frozen=True)
class LockTableProps:
    name: str
    kms_key_arn: str


class LockTable(Construct):
    """DynamoDB table for state locks (``aws_dynamodb_table.lock``)."""

    def __init__(self, scope: Construct, construct_id: str, props: LockTableProps) -> None:
        super().__init__(scope, construct_id)
        self._table = DynamodbTable(
            self,
            "table",
            name=props.name,
            billing_mode="PAY_PER_REQUEST",
            hash_key="LockID",
            attribute=[DynamodbTableAttribute(name="LockID", type="S")],
            server_side_encryption=DynamodbTableServerSideEncryption(
                enabled=True, kms_key_arn=props.kms_key_arn
            ),
            point_in_time_recovery=DynamodbTablePointInTimeRecovery(enabled=True),
            deletion_protection_enabled=True,
            lifecycle=PROTECTED,
        )
        self._table.override_logical_id("lock")

    @property
    def name(self) -> str:
        return self._table.name

    @property
    def arn(self) -> str:
        return self._table.arn
