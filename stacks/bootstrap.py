"""``bootstrap-<env>``: the S3 state bucket and DynamoDB lock table every other stack uses.

Phase 1 (``bootstrap_state = "local"``) keeps this stack's own state in a local file; phase 2
(``"s3"``) moves it into the bucket it created (``make migrate-bootstrap``).
"""

from __future__ import annotations

from constructs import Construct

from constructs_lib.account import account_data
from constructs_lib.aws_provider import aws_provider
from constructs_lib.encryption import CustomerKey, CustomerKeyProps
from constructs_lib.state_storage import (
    LockTable,
    LockTableProps,
    StateBucket,
    StateBucketProps,
    state_access_policy,
)
from platform_config.loader import Environment
from stacks.base import PlatformStack


class BootstrapStack(PlatformStack):
    kind = "bootstrap"

    def __init__(self, scope: Construct, env: Environment) -> None:
        super().__init__(scope, env)
        names = env.names.bootstrap
        bucket_settings = self.settings.state_bucket
        aws_provider(self, self.settings.aws_region, self.tags)
        account = account_data(self, "state_key_account", "state_key_partition")

        key = CustomerKey(
            self,
            "state_key",
            CustomerKeyProps(
                address="state",
                alias=names.kms_alias,
                description=f"Encrypts Terraform state and locks of environment {env.name}",
                account=account,
                deletion_window_days=bucket_settings.kms_deletion_window_days,
            ),
        )
        bucket = StateBucket(
            self,
            "state_bucket",
            StateBucketProps(
                name=names.state_bucket,
                sse_algorithm=bucket_settings.sse_algorithm,
                kms_key_arn=key.arn,
                noncurrent_version_expiration_days=bucket_settings.noncurrent_version_expiration_days,
                abort_incomplete_multipart_upload_days=bucket_settings.abort_incomplete_multipart_upload_days,
            ),
        )
        table = LockTable(self, "lock_table", LockTableProps(name=names.lock_table, kms_key_arn=key.arn))

        self.output("state_bucket_name", bucket.name, "Name of the Terraform state bucket")
        self.output("state_bucket_arn", bucket.arn, "ARN of the Terraform state bucket")
        self.output("lock_table_name", table.name, "Name of the DynamoDB state lock table")
        self.output("lock_table_arn", table.arn, "ARN of the DynamoDB state lock table")
        self.output("kms_key_arn", key.arn, "ARN of the KMS key encrypting state and locks")
        self.output("region", self.settings.aws_region, "Region of the state bucket and lock table")
        self.output(
            "state_access_policy_json",
            state_access_policy(bucket.arn, table.arn, key.arn),
            "Least-privilege IAM policy for principals that run Terraform against this backend",
        )

    def uses_local_state(self) -> bool:
        return self.settings.bootstrap_state == "local"
