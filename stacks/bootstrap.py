"""``bootstrap-<env>``: the S3 state bucket and DynamoDB lock table every other stack uses, the
bucket's access logs and, when ``state_bucket.replication.enabled``, its cross-region replica.

Phase 1 (``bootstrap_state = "local"``) keeps this stack's own state in a local file; phase 2
(``"s3"``) moves it into the bucket it created (``python -m ops state migrate``).
"""

from __future__ import annotations

from constructs import Construct

from constructs_lib.account import Account, account_data
from constructs_lib.aws_provider import aws_provider
from constructs_lib.ci_identity import CiIdentities, CiIdentitiesProps
from constructs_lib.encryption import CustomerKey, CustomerKeyProps
from constructs_lib.state_access import state_apply_policy, state_plan_policy
from constructs_lib.state_audit import StateAccessLogs, StateAccessLogsProps
from constructs_lib.state_replication import (
    StateReplica,
    StateReplicaProps,
    StateReplication,
    StateReplicationProps,
)
from constructs_lib.state_storage import LockTable, LockTableProps, StateBucket, StateBucketProps
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
                # Every state version, lock and replica source is encrypted with it.
                protect=True,
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
                replicated=bucket_settings.replication.enabled,
            ),
        )
        table = LockTable(self, "lock_table", LockTableProps(name=names.lock_table, kms_key_arn=key.arn))
        logs = StateAccessLogs(
            self,
            "state_access_logs",
            StateAccessLogsProps(
                name=names.log_bucket,
                account_id=account.account_id,
                state_bucket_id=bucket.id,
                state_bucket_arn=bucket.arn,
                expiration_days=bucket_settings.access_log_expiration_days,
                abort_incomplete_days=bucket_settings.abort_incomplete_multipart_upload_days,
            ),
        )
        replication = bucket_settings.replication
        if replication.enabled and replication.region is not None:  # the rules require the region
            self._replicate(replication.region, account, bucket, key)

        self.output("state_bucket_name", bucket.name, "Name of the Terraform state bucket")
        self.output("state_bucket_arn", bucket.arn, "ARN of the Terraform state bucket")
        self.output("lock_table_name", table.name, "Name of the DynamoDB state lock table")
        self.output("lock_table_arn", table.arn, "ARN of the DynamoDB state lock table")
        self.output("kms_key_arn", key.arn, "ARN of the KMS key encrypting state and locks")
        self.output("region", self.settings.aws_region, "Region of the state bucket and lock table")
        self.output("state_log_bucket_name", logs.name, "Bucket receiving the state bucket's access logs")
        self.output(
            "state_plan_policy_json",
            state_plan_policy(bucket.arn, names.state_bucket, table.arn, key.arn),
            "IAM policy for plans: read every state, take and release its lock; no state write",
        )
        self.output(
            "state_apply_policy_json",
            state_apply_policy(bucket.arn, table.arn, key.arn),
            "IAM policy for applies: read and write every state, its lock and its digest",
        )
        if self.settings.ci is not None:
            self._ci_identities(account, bucket, table.arn, key.arn)

    def _ci_identities(self, account: Account, bucket: StateBucket, table_arn: str, key_arn: str) -> None:
        """The GitHub OIDC provider and the plan and deploy roles (docs/decisions/ci-identities.md)."""
        ci, names = self.settings.ci, self.env.names.bootstrap
        assert ci is not None
        replication = self.settings.state_bucket.replication
        regions = (self.settings.aws_region,) + (
            (replication.region,) if replication.enabled and replication.region else ()
        )
        identities = CiIdentities(
            self,
            "ci",
            CiIdentitiesProps(
                env=self.env.name,
                repository=ci.github_repository,
                create_oidc_provider=ci.oidc_provider == "create",
                account=account,
                region=self.settings.aws_region,
                regions=regions,
                plan_role_name=names.plan_role,
                deploy_role_name=names.deploy_role,
                boundary_name=names.workload_boundary,
                state_plan_policy=state_plan_policy(bucket.arn, names.state_bucket, table_arn, key_arn),
                state_apply_policy=state_apply_policy(bucket.arn, table_arn, key_arn),
            ),
        )
        self.output(
            "ci_plan_role_arn",
            identities.plan_role_arn,
            f"GitHub Environment {self.env.name}-plan's variable AWS_PLAN_ROLE_ARN: plans, read only",
        )
        self.output(
            "ci_deploy_role_arn",
            identities.deploy_role_arn,
            f"GitHub Environment {self.env.name}'s variable AWS_DEPLOY_ROLE_ARN: applies mlflow-{self.env.name}",
        )
        self.output("ci_oidc_provider_arn", identities.provider_arn, "The account's GitHub OIDC provider")
        self.output(
            "workload_boundary_arn",
            identities.boundary_arn,
            "Permissions boundary every role the deploy role creates carries",
        )

    def _replicate(self, region: str, account: Account, bucket: StateBucket, key: CustomerKey) -> None:
        """The replica in ``region`` (its own provider and key) and the replication into it."""
        names, settings = self.env.names.bootstrap, self.settings.state_bucket
        provider = aws_provider(self, region, self.tags, alias="replica")
        replica = StateReplica(
            self,
            "state_replica",
            provider,
            StateReplicaProps(
                bucket_name=names.replica_bucket,
                kms_alias=names.replica_kms_alias,
                description=f"Encrypts the {region} replica of environment {self.env.name}'s Terraform state",
                account=account,
                deletion_window_days=settings.kms_deletion_window_days,
                noncurrent_version_expiration_days=settings.noncurrent_version_expiration_days,
                abort_incomplete_multipart_upload_days=settings.abort_incomplete_multipart_upload_days,
            ),
        )
        StateReplication(
            self,
            "state_replication",
            StateReplicationProps(
                role_name=names.replication_role,
                account_id=account.account_id,
                source_region=self.settings.aws_region,
                source_bucket_id=bucket.id,
                source_bucket_arn=bucket.arn,
                source_kms_key_arn=key.arn,
                source_versioning=bucket.versioning,
                replica_region=region,
                replica_bucket_arn=replica.arn,
                replica_kms_key_arn=replica.kms_key_arn,
                replica_versioning=replica.versioning,
            ),
        )
        self.output("state_replica_bucket_arn", replica.arn, f"ARN of the state bucket's replica in {region}")
        self.output(
            "state_replica_kms_key_arn", replica.kms_key_arn, "ARN of the KMS key encrypting the replica"
        )

    def uses_local_state(self) -> bool:
        return self.settings.bootstrap_state == "local"
