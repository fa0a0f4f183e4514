"""A customer-managed KMS key with rotation, an alias and an explicit key policy."""

from __future__ import annotations

import json
from typing import Any

from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from constructs import Construct


class CustomerKey(Construct):
    """KMS key (``aws_kms_key.<address>``) and alias (``aws_kms_alias.<address>``).

    The account root keeps full control, so IAM policies decide who may use the key;
    ``extra_statements`` grant AWS services (logs, SNS, ...) what they need.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        address: str,
        alias: str,
        description: str,
        deletion_window_days: int = 30,
        extra_statements: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.caller = DataAwsCallerIdentity(self, "caller")
        self.caller.override_logical_id(f"{address}_key_account")
        self.partition = DataAwsPartition(self, "partition")
        self.partition.override_logical_id(f"{address}_key_partition")
        root = f"arn:{self.partition.partition}:iam::{self.caller.account_id}:root"
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountRootAdministers",
                    "Effect": "Allow",
                    "Principal": {"AWS": root},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                *(extra_statements or []),
            ],
        }
        self.key = KmsKey(
            self,
            "key",
            description=description,
            enable_key_rotation=True,
            deletion_window_in_days=deletion_window_days,
            policy=json.dumps(policy),
        )
        self.key.override_logical_id(address)
        self.alias = KmsAlias(self, "alias", name=alias, target_key_id=self.key.key_id)
        self.alias.override_logical_id(address)

    @property
    def arn(self) -> str:
        return self.key.arn
