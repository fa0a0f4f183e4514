"""Encrypted log groups, the alerts topic with its e-mail subscriptions, and CloudWatch alarms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cdktf import Fn, TerraformCount, Token
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import (
    CloudwatchMetricAlarm,
    CloudwatchMetricAlarmMetricQuery,
)
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


@dataclass(frozen=True)
class AlarmSpec:
    """One CloudWatch alarm: a single metric (``namespace`` ... ``period``) or ``metric_query``.

    With ``count``, one alarm per instance: ``alarm_name`` and ``dimensions`` may use ``count.index``.
    """

    address: str  # aws_cloudwatch_metric_alarm.<address>
    description: str
    alarm_name: str
    evaluation_periods: int
    threshold: float
    comparison_operator: str
    treat_missing_data: str | None = None
    namespace: str | None = None
    metric_name: str | None = None
    dimensions: Mapping[str, str] | None = None
    statistic: str | None = None
    period: int | None = None
    metric_query: tuple[CloudwatchMetricAlarmMetricQuery, ...] = ()
    count: int | None = None


@dataclass(frozen=True)
class AlertsProps:
    name: str
    kms_key_arn: str
    emails: tuple[str, ...] = field(default_factory=tuple)


class Alerts(Construct):
    """``aws_sns_topic.alerts`` (KMS-encrypted), one e-mail subscription per address, and the
    alarms that notify it (``add_alarms``)."""

    def __init__(self, scope: Construct, construct_id: str, props: AlertsProps) -> None:
        super().__init__(scope, construct_id)
        self._topic = SnsTopic(self, "topic", name=props.name, kms_master_key_id=props.kms_key_arn)
        self._topic.override_logical_id("alerts")
        if props.emails:
            count = TerraformCount.of(len(props.emails))
            sub = SnsTopicSubscription(
                self,
                "email",
                count=count,
                topic_arn=self._topic.arn,
                protocol="email",
                endpoint=Fn.element(list(props.emails), Token.as_number(count.index)),
            )
            sub.override_logical_id("alerts_email")

    @property
    def topic_arn(self) -> str:
        return self._topic.arn

    def add_alarms(self, specs: Sequence[AlarmSpec]) -> list[CloudwatchMetricAlarm]:
        """Alarms that notify the topic when they fire and when they recover."""
        return [self._alarm(spec) for spec in specs]

    def _alarm(self, spec: AlarmSpec) -> CloudwatchMetricAlarm:
        alarm = CloudwatchMetricAlarm(
            self,
            spec.address,
            alarm_description=spec.description,
            alarm_actions=[self._topic.arn],
            ok_actions=[self._topic.arn],
            count=TerraformCount.of(spec.count) if spec.count is not None else None,
            alarm_name=spec.alarm_name,
            namespace=spec.namespace,
            metric_name=spec.metric_name,
            dimensions=dict(spec.dimensions) if spec.dimensions is not None else None,
            statistic=spec.statistic,
            period=spec.period,
            evaluation_periods=spec.evaluation_periods,
            threshold=spec.threshold,
            comparison_operator=spec.comparison_operator,
            treat_missing_data=spec.treat_missing_data,
            metric_query=list(spec.metric_query) or None,
        )
        alarm.override_logical_id(spec.address)
        return alarm
