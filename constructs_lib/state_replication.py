"""Cross-region replication of the state bucket: a replica bucket with its own key in another
region, the role S3 replicates as, and the replication rule.

Arguments as terraform-provider-aws documents ``aws_s3_bucket_replication_configuration``
(website/docs/r/s3_bucket_replication_configuration.html.markdown): ``depends_on`` the source
versioning; ``delete_marker_replication`` needs a V2 rule (one with ``filter``);
``sse_kms_encrypted_objects`` needs ``destination.encryption_configuration.replica_kms_key_id``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cdktf import TerraformResource
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.provider import AwsProvider
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_replication_configuration import (
    S3BucketReplicationConfigurationA,
    S3BucketReplicationConfigurationRule,
    S3BucketReplicationConfigurationRuleDeleteMarkerReplication,
    S3BucketReplicationConfigurationRuleDestination,
    S3BucketReplicationConfigurationRuleDestinationEncryptionConfiguration,
    S3BucketReplicationConfigurationRuleFilter,
    S3BucketReplicationConfigurationRuleSourceSelectionCriteria,
    S3BucketReplicationConfigurationRuleSourceSelectionCriteriaSseKmsEncryptedObjects,
)
from cdktf_cdktf_provider_aws.s3_bucket_versioning import S3BucketVersioningA
from constructs import Construct

from constructs_lib.account import Account
from constructs_lib.encryption import CustomerKey, CustomerKeyProps
from constructs_lib.policy import skip_checks
from constructs_lib.state_storage import PROTECTED, state_encryption, state_retention
from constructs_lib.storage import Bucket, private_bucket, tls_only_policy

ADDRESS = "state_replica"


@dataclass(frozen=True)
class StateReplicaProps:
    bucket_name: str
    kms_alias: str
    description: str  # of the replica key
    account: Account
    deletion_window_days: int
    noncurrent_version_expiration_days: int
    abort_incomplete_multipart_upload_days: int


class StateReplica(Bucket):
    """In the replica region (every resource on ``provider``): ``aws_kms_key.state_replica`` and
    the versioned, SSE-KMS, private ``aws_s3_bucket.state_replica``; both ``prevent_destroy``."""

    def __init__(
        self, scope: Construct, construct_id: str, provider: AwsProvider, props: StateReplicaProps
    ) -> None:
        super().__init__(scope, construct_id)
        self._key = CustomerKey(
            self,
            "key",
            CustomerKeyProps(
                address=ADDRESS,
                alias=props.kms_alias,
                description=props.description,
                account=props.account,
                deletion_window_days=props.deletion_window_days,
                protect=True,
            ),
        )
        self._bucket = S3Bucket(
            self, "bucket", bucket=props.bucket_name, force_destroy=False, lifecycle=PROTECTED
        )
        self._bucket.override_logical_id(ADDRESS)
        skip_checks(
            self._bucket,
            {
                "CKV_AWS_18": "only S3 replication writes here; the source bucket's access logs record "
                "every state read and write, and a second log bucket in this region adds no reader",
                "CKV2_AWS_62": "nothing consumes replica bucket events",
            },
        )
        self._versioning = private_bucket(self, ADDRESS, self._bucket)
        state_encryption(self, ADDRESS, self._bucket.id, "aws:kms", self._key.arn)
        state_retention(
            self,
            ADDRESS,
            self._bucket.id,
            props.noncurrent_version_expiration_days,
            props.abort_incomplete_multipart_upload_days,
        )
        tls_only_policy(self, ADDRESS, self._bucket)
        # The key and bucket live in the replica region: no resource here may fall back to the
        # stack's default provider.
        for child in self.node.find_all():
            if isinstance(child, TerraformResource):
                child.provider = provider

    @property
    def kms_key_arn(self) -> str:
        return self._key.arn

    @property
    def versioning(self) -> S3BucketVersioningA:
        return self._versioning


@dataclass(frozen=True)
class StateReplicationProps:
    role_name: str
    account_id: str
    source_region: str
    source_bucket_id: str
    source_bucket_arn: str
    source_kms_key_arn: str
    source_versioning: S3BucketVersioningA
    replica_region: str
    replica_bucket_arn: str
    replica_kms_key_arn: str
    replica_versioning: S3BucketVersioningA


def _via_s3(region: str, bucket_arn: str) -> dict[str, Any]:
    """KMS use only through S3 in ``region``, for objects of ``bucket_arn`` (with a bucket key the
    encryption context is the bucket's ARN, without one the object's)."""
    return {
        "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
        "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket_arn, f"{bucket_arn}/*"]},
    }


def replication_policy(props: StateReplicationProps) -> dict[str, Any]:
    """What S3 needs to copy every version of the source into the replica, and nothing more."""
    source, replica = props.source_bucket_arn, props.replica_bucket_arn
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadSourceReplicationConfiguration",
                "Effect": "Allow",
                "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
                "Resource": source,
            },
            {
                "Sid": "ReadSourceVersions",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObjectVersionForReplication",
                    "s3:GetObjectVersionAcl",
                    "s3:GetObjectVersionTagging",
                ],
                "Resource": f"{source}/*",
            },
            {
                "Sid": "WriteReplicas",
                "Effect": "Allow",
                "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
                "Resource": f"{replica}/*",
            },
            {
                "Sid": "DecryptSource",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": props.source_kms_key_arn,
                "Condition": _via_s3(props.source_region, source),
            },
            {
                "Sid": "EncryptReplica",
                "Effect": "Allow",
                "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
                "Resource": props.replica_kms_key_arn,
                "Condition": _via_s3(props.replica_region, replica),
            },
        ],
    }


class StateReplication(Construct):
    """``aws_iam_role.state_replication`` (only S3, only for the state bucket of this account, may
    assume it), its inline policy, and ``aws_s3_bucket_replication_configuration.state``."""

    def __init__(self, scope: Construct, construct_id: str, props: StateReplicationProps) -> None:
        super().__init__(scope, construct_id)
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "s3.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": props.account_id},
                        "ArnLike": {"aws:SourceArn": props.source_bucket_arn},
                    },
                }
            ],
        }
        role = IamRole(
            self,
            "role",
            name=props.role_name,
            description="S3 replicates the Terraform state bucket to its cross-region replica",
            assume_role_policy=json.dumps(trust),
        )
        role.override_logical_id("state_replication")
        IamRolePolicy(
            self, "policy", role=role.id, name="replicate-state", policy=json.dumps(replication_policy(props))
        ).override_logical_id("state_replication")
        S3BucketReplicationConfigurationA(
            self,
            "configuration",
            bucket=props.source_bucket_id,
            role=role.arn,
            rule=[
                S3BucketReplicationConfigurationRule(
                    id="replicate-state",
                    status="Enabled",
                    filter=S3BucketReplicationConfigurationRuleFilter(prefix=""),
                    # A deleted state is deleted in the replica too; its versions stay in both.
                    delete_marker_replication=S3BucketReplicationConfigurationRuleDeleteMarkerReplication(
                        status="Enabled"
                    ),
                    source_selection_criteria=S3BucketReplicationConfigurationRuleSourceSelectionCriteria(
                        sse_kms_encrypted_objects=S3BucketReplicationConfigurationRuleSourceSelectionCriteriaSseKmsEncryptedObjects(
                            status="Enabled"
                        )
                    ),
                    destination=S3BucketReplicationConfigurationRuleDestination(
                        bucket=props.replica_bucket_arn,
                        storage_class="STANDARD",
                        encryption_configuration=S3BucketReplicationConfigurationRuleDestinationEncryptionConfiguration(
                            replica_kms_key_id=props.replica_kms_key_arn
                        ),
                    ),
                )
            ],
            # S3 refuses a replication configuration until both buckets are versioned.
            depends_on=[props.source_versioning, props.replica_versioning],
        ).override_logical_id("state")
