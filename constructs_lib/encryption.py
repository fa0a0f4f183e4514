"""A customer-managed KMS key with rotation, an alias and an explicit key policy, and the
key-policy statements of the AWS services that use a key on their own behalf."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from constructs import Construct

from constructs_lib.account import Account

Statement = dict[str, Any]
KeyService = Literal["logs", "cloudwatch", "autoscaling"]


def _logs(account: Account, region: str) -> list[Statement]:
    log_groups = f"arn:{account.partition}:logs:{region}:{account.account_id}:log-group:*"
    return [
        {
            "Sid": "CloudWatchLogsEncryptsThisAccountsLogGroups",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.amazonaws.com"},
            "Action": [
                "kms:Encrypt*",
                "kms:Decrypt*",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:Describe*",
            ],
            "Resource": "*",
            "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}},
        }
    ]


def _cloudwatch(account: Account, region: str) -> list[Statement]:
    return [
        {
            "Sid": "CloudWatchAlarmsPublishToEncryptedTopic",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
        }
    ]


def _autoscaling(account: Account, region: str) -> list[Statement]:
    # Launches instances with encrypted root volumes and publishes its notifications. The
    # service-linked role exists once any auto scaling group was created in the account.
    role = {
        "AWS": f"arn:{account.partition}:iam::{account.account_id}:role/aws-service-role/"
        "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    }
    return [
        {
            "Sid": "AutoScalingUsesKeyForVolumesAndNotifications",
            "Effect": "Allow",
            "Principal": role,
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey",
            ],
            "Resource": "*",
        },
        {
            "Sid": "AutoScalingCreatesGrantsForVolumes",
            "Effect": "Allow",
            "Principal": role,
            "Action": "kms:CreateGrant",
            "Resource": "*",
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
    ]


_SERVICE_STATEMENTS: dict[KeyService, Callable[[Account, str], list[Statement]]] = {
    "logs": _logs,
    "cloudwatch": _cloudwatch,
    "autoscaling": _autoscaling,
}


def service_statements(services: Sequence[KeyService], account: Account, region: str) -> list[Statement]:
    """Key-policy statements letting each of ``services`` use the key on its own behalf (everything
    else goes through IAM), in the order given."""
    return [statement for service in services for statement in _SERVICE_STATEMENTS[service](account, region)]


@dataclass(frozen=True)
class CustomerKeyProps:
    address: str  # aws_kms_key.<address> and aws_kms_alias.<address>
    alias: str
    description: str
    account: Account
    deletion_window_days: int = 30
    extra_statements: tuple[Statement, ...] = field(default_factory=tuple)


class CustomerKey(Construct):
    """KMS key (``aws_kms_key.<address>``) and alias (``aws_kms_alias.<address>``).

    The account root keeps full control, so IAM policies decide who may use the key;
    ``extra_statements`` grant AWS services (logs, SNS, ...) what they need.
    """

    def __init__(self, scope: Construct, construct_id: str, props: CustomerKeyProps) -> None:
        super().__init__(scope, construct_id)
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountRootAdministers",
                    "Effect": "Allow",
                    "Principal": {"AWS": props.account.root_arn},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                *props.extra_statements,
            ],
        }
        self._key = KmsKey(
            self,
            "key",
            description=props.description,
            enable_key_rotation=True,
            deletion_window_in_days=props.deletion_window_days,
            policy=json.dumps(policy),
        )
        self._key.override_logical_id(props.address)
        alias = KmsAlias(self, "alias", name=props.alias, target_key_id=self._key.key_id)
        alias.override_logical_id(props.address)

    @property
    def arn(self) -> str:
        return self._key.arn
