"""A customer-managed KMS key with rotation, an alias and an explicit key policy, and the
key-policy statements of the AWS services that use a key on their own behalf."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.data_aws_iam_role import DataAwsIamRole
from cdktf_cdktf_provider_aws.iam_service_linked_role import IamServiceLinkedRole
from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from constructs import Construct

from constructs_lib.account import Account

Statement = dict[str, Any]
KeyService = Literal["logs", "cloudwatch", "autoscaling"]
AUTOSCALING_ROLE = "AWSServiceRoleForAutoScaling"


@dataclass(frozen=True)
class KeyUsers:
    """Who the service statements name: the account and region, and the auto scaling
    service-linked role's ARN (from ``autoscaling_service_role``, so the role exists first)."""

    account: Account
    region: str
    autoscaling_role_arn: str = ""


def autoscaling_service_role(scope: Construct, create: bool) -> str:
    """The ARN of ``AWSServiceRoleForAutoScaling``, which a key policy may only name once it exists.

    AWS creates it with the account's first auto scaling group, and ``CreateServiceLinkedRole``
    fails when it already exists: so it is created here only when asked
    (``aws_iam_service_linked_role.autoscaling``), and otherwise read
    (``data.aws_iam_role.autoscaling_service_role``), which fails the plan with "not found" in an
    account that has none, instead of a MalformedPolicyDocumentException at apply.
    """
    if create:
        role = IamServiceLinkedRole(
            scope,
            "autoscaling_service_role",
            aws_service_name="autoscaling.amazonaws.com",
            description="Auto scaling launches the MLflow instances with encrypted volumes",
        )
        role.override_logical_id("autoscaling")
        return role.arn
    existing = DataAwsIamRole(scope, "autoscaling_service_role", name=AUTOSCALING_ROLE)
    existing.override_logical_id("autoscaling_service_role")
    return existing.arn


def _logs(users: KeyUsers) -> list[Statement]:
    account, region = users.account, users.region
    log_groups = f"arn:{account.partition}:logs:{region}:{account.account_id}:log-group:*"
    return [
        {
            "Sid": "CloudWatchLogsEncryptsThisAccountsLogGroups",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.amazonaws.com"},
            # The calls CloudWatch Logs makes with a log group's encryption context; the wildcards
            # of AWS's example (kms:Encrypt*, kms:Describe*, ...) reach actions that never carry it.
            "Action": [
                "kms:Decrypt",
                "kms:Encrypt",
                "kms:GenerateDataKey",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:ReEncryptFrom",
                "kms:ReEncryptTo",
            ],
            "Resource": "*",
            "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}},
        }
    ]


def _cloudwatch(users: KeyUsers) -> list[Statement]:
    account = users.account
    alarms = f"arn:{account.partition}:cloudwatch:{users.region}:{account.account_id}:alarm:*"
    return [
        {
            "Sid": "CloudWatchAlarmsPublishToEncryptedTopic",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            # Only this account's alarms: no other account's alarm can make CloudWatch use the key.
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account.account_id},
                "ArnLike": {"aws:SourceArn": alarms},
            },
        }
    ]


def _autoscaling(users: KeyUsers) -> list[Statement]:
    # Launches instances with encrypted root volumes and publishes its notifications.
    if not users.autoscaling_role_arn:
        raise ValueError("the autoscaling key statements need autoscaling_service_role()'s ARN")
    role = {"AWS": users.autoscaling_role_arn}
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


_SERVICE_STATEMENTS: dict[KeyService, Callable[[KeyUsers], list[Statement]]] = {
    "logs": _logs,
    "cloudwatch": _cloudwatch,
    "autoscaling": _autoscaling,
}


def service_statements(services: Sequence[KeyService], users: KeyUsers) -> list[Statement]:
    """Key-policy statements letting each of ``services`` use the key on its own behalf (everything
    else goes through IAM), in the order given."""
    return [statement for service in services for statement in _SERVICE_STATEMENTS[service](users)]


@dataclass(frozen=True)
class CustomerKeyProps:
    address: str  # aws_kms_key.<address> and aws_kms_alias.<address>
    alias: str
    description: str
    account: Account
    deletion_window_days: int = 30
    extra_statements: tuple[Statement, ...] = field(default_factory=tuple)
    # prevent_destroy: everything the key encrypted is lost with it. A key left unprotected says
    # why in ``unprotected_because`` (written next to the key's construction).
    protect: bool = True
    unprotected_because: str = ""

    def __post_init__(self) -> None:
        if not self.protect and not self.unprotected_because.strip():
            raise ValueError(f"aws_kms_key.{self.address}: an unprotected key needs unprotected_because")


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
            lifecycle=TerraformResourceLifecycle(prevent_destroy=True) if props.protect else None,
        )
        self._key.override_logical_id(props.address)
        alias = KmsAlias(self, "alias", name=props.alias, target_key_id=self._key.key_id)
        alias.override_logical_id(props.address)

    @property
    def arn(self) -> str:
        return self._key.arn
