"""The MLflow instances: launch template and auto scaling group with target tracking, instance
refresh (one instance at a time, no automatic rollback) and notifications. No key pair: shell access is SSM Session Manager."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cdktf import ITerraformDependable, Token
from cdktf_cdktf_provider_aws.autoscaling_group import AutoscalingGroup, AutoscalingGroupTag
from cdktf_cdktf_provider_aws.autoscaling_notification import AutoscalingNotification
from cdktf_cdktf_provider_aws.autoscaling_policy import AutoscalingPolicy
from cdktf_cdktf_provider_aws.launch_template import (
    LaunchTemplate,
    LaunchTemplateBlockDeviceMappings,
    LaunchTemplateNetworkInterfaces,
    LaunchTemplateTagSpecifications,
)
from constructs import Construct

# pip installs MLflow at boot: give it time before the load balancer's verdict counts.
HEALTH_CHECK_GRACE_SECONDS = 600


def refresh_max_healthy(desired: int) -> int:
    """The instance refresh's max healthy percentage that adds one instance above ``desired``
    (AWS rounds the percentage of the desired capacity; the range is 100 to 200)."""
    return min(200, 100 + -(-100 // max(desired, 1)))


@dataclass(frozen=True)
class MlflowServersProps:
    name: str
    ami_id: str  # pinned: a new AMI is a reviewed change (it starts an instance refresh)
    instance_type: str
    root_volume_size_gb: int
    min_size: int
    max_size: int
    desired_capacity: int
    cpu_target_percent: int
    user_data_base64: str
    instance_profile_arn: str
    security_group_id: str
    subnet_ids: list[str]
    target_group_arn: str
    kms_key_arn: str
    sns_topic_arn: str
    tags: Mapping[str, str]
    # What the instances need before their first boot (their settings, their role's policy
    # attachments: a policy that exists but is not attached grants nothing).
    depends_on: Sequence[ITerraformDependable] = field(default_factory=tuple)


class MlflowServers(Construct):
    """``aws_launch_template.mlflow`` and ``aws_autoscaling_group.mlflow``."""

    def __init__(self, scope: Construct, construct_id: str, props: MlflowServersProps) -> None:
        super().__init__(scope, construct_id)
        s = props
        name = s.name
        instance_tags = {**s.tags, "Name": name}
        self._launch_template = LaunchTemplate(
            self,
            "launch_template",
            name=name,
            description="MLflow server behind nginx",
            image_id=s.ami_id,
            instance_type=s.instance_type,
            update_default_version=True,
            ebs_optimized="true",
            user_data=s.user_data_base64,
            iam_instance_profile={"arn": s.instance_profile_arn},
            network_interfaces=[
                LaunchTemplateNetworkInterfaces(
                    device_index=0,
                    associate_public_ip_address="false",
                    security_groups=[s.security_group_id],
                    delete_on_termination="true",
                )
            ],
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
                "instance_metadata_tags": "disabled",
            },
            monitoring={"enabled": True},
            block_device_mappings=[
                LaunchTemplateBlockDeviceMappings(
                    device_name="/dev/xvda",
                    ebs={
                        "volume_size": s.root_volume_size_gb,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "kms_key_id": s.kms_key_arn,
                        "delete_on_termination": "true",
                    },
                )
            ],
            # Instances get their tags from the group (propagate_at_launch), volumes from here.
            tag_specifications=[LaunchTemplateTagSpecifications(resource_type="volume", tags=instance_tags)],
        )
        self._launch_template.override_logical_id("mlflow")

        self._group = AutoscalingGroup(
            self,
            "asg",
            name=name,
            min_size=s.min_size,
            max_size=s.max_size,
            desired_capacity=s.desired_capacity,
            vpc_zone_identifier=s.subnet_ids,
            target_group_arns=[s.target_group_arn],
            health_check_type="ELB",
            health_check_grace_period=HEALTH_CHECK_GRACE_SECONDS,
            # A new template version changes this, which starts an instance refresh.
            launch_template={
                "id": self._launch_template.id,
                "version": Token.as_string(self._launch_template.latest_version),
            },
            instance_refresh={
                "strategy": "Rolling",
                "preferences": {
                    # Launch the replacement before terminating (capacity never drops), one instance
                    # at a time: the extra percentage is one instance of the desired capacity.
                    "min_healthy_percentage": 100,
                    "max_healthy_percentage": refresh_max_healthy(s.desired_capacity),
                    "instance_warmup": str(HEALTH_CHECK_GRACE_SECONDS),
                    # No automatic rollback: an MLflow upgrade migrates the databases before the
                    # refresh, and the previous release refuses to start on the newer schema, so
                    # instances of the previous template would fail too. A failed refresh stops
                    # and keeps the healthy instances; the way back is the snapshot the upgrade
                    # took (docs/decisions/mlflow-upgrades.md).
                    "auto_rollback": False,
                },
            },
            enabled_metrics=[
                "GroupDesiredCapacity",
                "GroupInServiceInstances",
                "GroupMinSize",
                "GroupMaxSize",
                "GroupPendingInstances",
                "GroupTerminatingInstances",
                "GroupTotalInstances",
            ],
            metrics_granularity="1Minute",
            # Apply waits until exactly this many instances pass the load balancer's /health check
            # (the provider's capacity check, create and update), and fails after the timeout: a
            # broken boot is a failed deploy, not a green one.
            wait_for_elb_capacity=s.desired_capacity,
            wait_for_capacity_timeout="20m",
            # Provider default_tags do not reach the instances an auto scaling group launches.
            tag=[
                AutoscalingGroupTag(key=k, value=v, propagate_at_launch=True)
                for k, v in sorted(instance_tags.items())
            ],
            depends_on=list(s.depends_on),
        )
        self._group.override_logical_id("mlflow")

        AutoscalingPolicy(
            self,
            "cpu_policy",
            name=f"{name}-cpu-target",
            autoscaling_group_name=self._group.name,
            policy_type="TargetTrackingScaling",
            estimated_instance_warmup=HEALTH_CHECK_GRACE_SECONDS,
            target_tracking_configuration={
                "predefined_metric_specification": {"predefined_metric_type": "ASGAverageCPUUtilization"},
                "target_value": s.cpu_target_percent,
            },
        ).override_logical_id("mlflow_cpu_target")

        AutoscalingNotification(
            self,
            "notifications",
            group_names=[self._group.name],
            topic_arn=s.sns_topic_arn,
            notifications=[
                "autoscaling:EC2_INSTANCE_LAUNCH",
                "autoscaling:EC2_INSTANCE_LAUNCH_ERROR",
                "autoscaling:EC2_INSTANCE_TERMINATE",
                "autoscaling:EC2_INSTANCE_TERMINATE_ERROR",
            ],
        ).override_logical_id("mlflow")

    @property
    def group_name(self) -> str:
        return self._group.name
