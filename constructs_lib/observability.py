"""Encrypted log groups, the alerts topic with its e-mail subscriptions, and CloudWatch alarms."""

from __future__ import annotations

from typing import Any

from cdktf import Fn, TerraformCount, Token
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from constructs import Construct

from constructs_lib.policy import skip_checks

MIN_COMPLIANT_RETENTION = 365


def log_group(
    scope: Construct, address: str, *, name: str, kms_key_arn: str, retention_days: int
) -> CloudwatchLogGroup:
    """``aws_cloudwatch_log_group.<address>``, encrypted with the stack's key."""
    group = CloudwatchLogGroup(
        scope, address, name=name, kms_key_id=kms_key_arn, retention_in_days=retention_days
    )
    group.override_logical_id(address)
    if retention_days < MIN_COMPLIANT_RETENTION:
        skip_checks(
            group,
            {
                "CKV_AWS_338": f"retention is {retention_days} days by this non-production environment's "
                "mlflow.log_retention_days (cost); production enforces >= 365"
            },
        )
    return group


class Alerts(Construct):
    """``aws_sns_topic.alerts`` (KMS-encrypted) and one e-mail subscription per address."""

    def __init__(
        self, scope: Construct, construct_id: str, *, name: str, kms_key_arn: str, emails: tuple[str, ...]
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = SnsTopic(self, "topic", name=name, kms_master_key_id=kms_key_arn)
        self.topic.override_logical_id("alerts")
        if emails:
            count = TerraformCount.of(len(emails))
            sub = SnsTopicSubscription(
                self,
                "email",
                count=count,
                topic_arn=self.topic.arn,
                protocol="email",
                endpoint=Fn.element(list(emails), Token.as_number(count.index)),
            )
            sub.override_logical_id("alerts_email")

    def alarm(self, address: str, *, description: str, **kwargs: Any) -> CloudwatchMetricAlarm:
        """An alarm that notifies the topic when it fires and when it recovers."""
        alarm = CloudwatchMetricAlarm(
            self,
            address,
            alarm_description=description,
            alarm_actions=[self.topic.arn],
            ok_actions=[self.topic.arn],
            **kwargs,
        )
        alarm.override_logical_id(address)
        return alarm
