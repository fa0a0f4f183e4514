"""The account and partition a stack deploys into: declared once per stack, passed as handles."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from constructs import Construct


@dataclass(frozen=True)
class Account:
    """References to the deploying account's id and partition (``aws``, ``aws-cn``, ...)."""

    account_id: str
    partition: str

    @property
    def root_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:root"


def account_data(scope: Construct, caller_address: str, partition_address: str) -> Account:
    """``data.aws_caller_identity.<caller_address>`` and ``data.aws_partition.<partition_address>``."""
    caller = DataAwsCallerIdentity(scope, "caller")
    caller.override_logical_id(caller_address)
    partition = DataAwsPartition(scope, "partition")
    partition.override_logical_id(partition_address)
    return Account(account_id=caller.account_id, partition=partition.partition)
