"""Server access logging of the state bucket (who read or overwrote which state) into its own log
bucket, ``aws_s3_bucket.state_logs``."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_logging import S3BucketLoggingA
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from constructs import Construct

from constructs_lib.policy import skip_checks
from constructs_lib.storage import Bucket, deny_insecure_transport, log_storage, private_bucket

LOG_PREFIX = "s3-access/state/"
ADDRESS = "state_logs"


@dataclass(frozen=True)
class StateAccessLogsProps:
    name: str  # the log bucket
    account_id: str
    state_bucket_id: str
    state_bucket_arn: str
    expiration_days: int
    abort_incomplete_days: int


class StateAccessLogs(Bucket):
    """The log bucket (``aws_s3_bucket.state_logs``, SSE-S3: server access logs are only delivered
    to SSE-S3 buckets) and the state bucket's logging into it (``aws_s3_bucket_logging.state``)."""

    def __init__(self, scope: Construct, construct_id: str, props: StateAccessLogsProps) -> None:
        super().__init__(scope, construct_id)
        self._bucket = S3Bucket(
            self,
            "bucket",
            bucket=props.name,
            force_destroy=False,
            # The audit trail of the state: kept even when the environment is torn down.
            lifecycle=TerraformResourceLifecycle(prevent_destroy=True),
        )
        self._bucket.override_logical_id(ADDRESS)
        skip_checks(
            self._bucket,
            {
                "CKV_AWS_145": "S3 server access logs can only be delivered to SSE-S3 (AES256) buckets, "
                "not SSE-KMS",
                "CKV_AWS_144": "access logs expire after access_log_expiration_days; the state itself "
                "is what is replicated (production)",
                "CKV2_AWS_62": "nothing consumes log bucket events; the logs are read on demand",
            },
        )
        bucket_id, arn = self._bucket.id, self._bucket.arn
        private_bucket(self, ADDRESS, self._bucket)
        log_storage(self, ADDRESS, bucket_id, props.expiration_days, props.abort_incomplete_days)
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                deny_insecure_transport(arn),
                {
                    # Only the state bucket's own log delivery, not any bucket of any account.
                    "Sid": "S3ServerAccessLogDelivery",
                    "Effect": "Allow",
                    "Principal": {"Service": "logging.s3.amazonaws.com"},
                    "Action": "s3:PutObject",
                    "Resource": f"{arn}/{LOG_PREFIX}*",
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": props.account_id},
                        "ArnLike": {"aws:SourceArn": props.state_bucket_arn},
                    },
                },
            ],
        }
        delivery = S3BucketPolicy(self, "policy", bucket=bucket_id, policy=json.dumps(policy))
        delivery.override_logical_id(ADDRESS)
        S3BucketLoggingA(
            self,
            "logging",
            bucket=props.state_bucket_id,
            target_bucket=bucket_id,
            target_prefix=LOG_PREFIX,
            # Logs delivered before the policy allows them would be lost.
            depends_on=[delivery],
        ).override_logical_id("state")
