"""The artifact bucket (SSE-KMS) and the log bucket (SSE-S3, as ALB access logs require)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.data_aws_elb_service_account import DataAwsElbServiceAccount
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleExpiration,
    S3BucketLifecycleConfigurationRuleFilter,
    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration,
)
from cdktf_cdktf_provider_aws.s3_bucket_logging import S3BucketLoggingA
from cdktf_cdktf_provider_aws.s3_bucket_ownership_controls import S3BucketOwnershipControls
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from cdktf_cdktf_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktf_cdktf_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
)
from cdktf_cdktf_provider_aws.s3_bucket_versioning import S3BucketVersioningA
from cdktf_cdktf_provider_random.id import Id as RandomId
from constructs import Construct

from constructs_lib.policy import skip_checks

ALB_LOG_PREFIX = "alb"
ACCESS_LOG_PREFIX = "s3-access/mlflow_artifacts/"
ARTIFACT_PREFIX = "artifacts"

_NO_REPLICATION = (
    "single-region platform: versioning plus lifecycle cover recovery; cross-region replication "
    "is a disaster-recovery decision outside this stack"
)
_NO_EVENTS = "nothing consumes bucket events; MLflow reads and writes through the API"


def bucket_suffix(scope: Construct) -> RandomId:
    """``random_id.bucket_suffix``: keeps bucket names globally unique."""
    suffix = RandomId(scope, "bucket_suffix", byte_length=4)
    suffix.override_logical_id("bucket_suffix")
    return suffix


def deny_insecure_transport(arn: str) -> dict[str, Any]:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def private_bucket(scope: Construct, address: str, bucket: S3Bucket) -> S3BucketVersioningA:
    """Versioning, all four public-access-block flags and BucketOwnerEnforced, at ``<type>.<address>``;
    returns the versioning (replication may only be configured once it is on)."""
    S3BucketPublicAccessBlock(
        scope,
        f"{address}_public_access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    ).override_logical_id(address)
    S3BucketOwnershipControls(
        scope, f"{address}_ownership", bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}
    ).override_logical_id(address)
    versioning = S3BucketVersioningA(
        scope, f"{address}_versioning", bucket=bucket.id, versioning_configuration={"status": "Enabled"}
    )
    versioning.override_logical_id(address)
    return versioning


def tls_only_policy(scope: Construct, address: str, bucket: S3Bucket) -> None:
    """``aws_s3_bucket_policy.<address>`` denying every request without TLS."""
    S3BucketPolicy(
        scope,
        "policy",
        bucket=bucket.id,
        policy=json.dumps({"Version": "2012-10-17", "Statement": [deny_insecure_transport(bucket.arn)]}),
    ).override_logical_id(address)


def lifecycle_rule(
    scope: Construct,
    address: str,
    bucket_id: str,
    *,
    rule_id: str,
    noncurrent_days: int,
    abort_incomplete_days: int,
    expiration_days: int | None = None,
) -> None:
    """The bucket's one lifecycle rule at ``<type>.<address>``: noncurrent versions expire after
    ``noncurrent_days``, incomplete uploads are aborted, and (logs) objects expire."""
    S3BucketLifecycleConfiguration(
        scope,
        "lifecycle",
        bucket=bucket_id,
        rule=[
            S3BucketLifecycleConfigurationRule(
                id=rule_id,
                status="Enabled",
                filter=[S3BucketLifecycleConfigurationRuleFilter(prefix="")],
                expiration=(
                    [S3BucketLifecycleConfigurationRuleExpiration(days=expiration_days)]
                    if expiration_days is not None
                    else None
                ),
                noncurrent_version_expiration=[
                    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(
                        noncurrent_days=noncurrent_days
                    )
                ],
                abort_incomplete_multipart_upload=[
                    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(
                        days_after_initiation=abort_incomplete_days
                    )
                ],
            )
        ],
    ).override_logical_id(address)


def log_storage(
    scope: Construct, address: str, bucket_id: str, expiration_days: int, abort_incomplete_days: int
) -> None:
    """SSE-S3 (the only encryption log deliveries write to) and a lifecycle expiring the logs, at
    ``<type>.<address>``."""
    S3BucketServerSideEncryptionConfigurationA(
        scope,
        "encryption",
        bucket=bucket_id,
        rule=[
            S3BucketServerSideEncryptionConfigurationRuleA(
                apply_server_side_encryption_by_default={"sse_algorithm": "AES256"}
            )
        ],
    ).override_logical_id(address)
    lifecycle_rule(
        scope,
        address,
        bucket_id,
        rule_id="expire-logs",
        noncurrent_days=7,
        abort_incomplete_days=abort_incomplete_days,
        expiration_days=expiration_days,
    )


class Bucket(Construct):
    """The handles every bucket construct publishes."""

    _bucket: S3Bucket

    @property
    def name(self) -> str:
        return self._bucket.bucket

    @property
    def id(self) -> str:
        return self._bucket.id

    @property
    def arn(self) -> str:
        return self._bucket.arn


@dataclass(frozen=True)
class LogBucketProps:
    name: str
    account_id: str
    expiration_days: int
    abort_incomplete_days: int


class LogBucket(Bucket):
    """``aws_s3_bucket.alb_logs``: ALB access logs and the artifact bucket's server access logs.

    Both log deliveries only write to SSE-S3 buckets, hence no KMS key here.
    """

    def __init__(self, scope: Construct, construct_id: str, props: LogBucketProps) -> None:
        super().__init__(scope, construct_id)
        account_id = props.account_id
        self._bucket = S3Bucket(self, "bucket", bucket=props.name, force_destroy=False)
        self._bucket.override_logical_id("alb_logs")
        skip_checks(
            self._bucket,
            {
                "CKV_AWS_145": "ALB access logs and S3 server access logs can only be delivered to SSE-S3 "
                "(AES256) buckets, not SSE-KMS",
                "CKV_AWS_144": _NO_REPLICATION,
                "CKV2_AWS_62": _NO_EVENTS,
            },
        )
        private_bucket(self, "alb_logs", self._bucket)
        log_storage(self, "alb_logs", self._bucket.id, props.expiration_days, props.abort_incomplete_days)
        elb = DataAwsElbServiceAccount(self, "elb_account")
        arn = self._bucket.arn
        alb_objects = f"{arn}/{ALB_LOG_PREFIX}/AWSLogs/{account_id}/*"
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                deny_insecure_transport(arn),
                {
                    # Regions opened before August 2022 deliver as the regional ELB account ...
                    "Sid": "AlbLogDeliveryLegacyRegions",
                    "Effect": "Allow",
                    "Principal": {"AWS": elb.arn},
                    "Action": "s3:PutObject",
                    "Resource": alb_objects,
                },
                {
                    # ... newer regions as the log delivery service.
                    "Sid": "AlbLogDelivery",
                    "Effect": "Allow",
                    "Principal": {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
                    "Action": "s3:PutObject",
                    "Resource": alb_objects,
                },
                {
                    "Sid": "S3ServerAccessLogDelivery",
                    "Effect": "Allow",
                    "Principal": {"Service": "logging.s3.amazonaws.com"},
                    "Action": "s3:PutObject",
                    "Resource": f"{arn}/{ACCESS_LOG_PREFIX}*",
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                },
            ],
        }
        self._policy = S3BucketPolicy(self, "policy", bucket=self._bucket.id, policy=json.dumps(policy))
        self._policy.override_logical_id("alb_logs")

    @property
    def delivery_policy(self) -> S3BucketPolicy:
        """The policy letting the load balancer write its logs: ELB checks write access when access
        logging is switched on, so the load balancer must be created after it."""
        return self._policy


@dataclass(frozen=True)
class ArtifactBucketProps:
    name: str
    kms_key_arn: str
    log_bucket_id: str  # receives the server access logs
    noncurrent_days: int
    abort_incomplete_days: int
    protect: bool  # prevent_destroy


class ArtifactBucket(Bucket):
    """``aws_s3_bucket.mlflow_artifacts``: MLflow's artifact store (``--artifacts-destination``)."""

    def __init__(self, scope: Construct, construct_id: str, props: ArtifactBucketProps) -> None:
        super().__init__(scope, construct_id)
        self._bucket = S3Bucket(
            self,
            "bucket",
            bucket=props.name,
            force_destroy=False,
            lifecycle=TerraformResourceLifecycle(prevent_destroy=True) if props.protect else None,
        )
        self._bucket.override_logical_id("mlflow_artifacts")
        skip_checks(self._bucket, {"CKV_AWS_144": _NO_REPLICATION, "CKV2_AWS_62": _NO_EVENTS})
        private_bucket(self, "mlflow_artifacts", self._bucket)
        S3BucketServerSideEncryptionConfigurationA(
            self,
            "encryption",
            bucket=self._bucket.id,
            rule=[
                S3BucketServerSideEncryptionConfigurationRuleA(
                    apply_server_side_encryption_by_default={
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": props.kms_key_arn,
                    },
                    bucket_key_enabled=True,
                )
            ],
        ).override_logical_id("mlflow_artifacts")
        lifecycle_rule(
            self,
            "mlflow_artifacts",
            self._bucket.id,
            rule_id="expire-noncurrent-artifacts",
            noncurrent_days=props.noncurrent_days,
            abort_incomplete_days=props.abort_incomplete_days,
        )
        S3BucketLoggingA(
            self,
            "logging",
            bucket=self._bucket.id,
            target_bucket=props.log_bucket_id,
            target_prefix=ACCESS_LOG_PREFIX,
        ).override_logical_id("mlflow_artifacts")
        tls_only_policy(self, "mlflow_artifacts", self._bucket)

    @property
    def artifacts_uri(self) -> str:
        return f"s3://{self.name}/{ARTIFACT_PREFIX}"
