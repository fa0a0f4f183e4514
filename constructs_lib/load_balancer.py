"""The internet-facing ALB in front of nginx on the MLflow instances: HTTPS on 443 (MLflow's sign-in
sends passwords), and port 80 only redirects to it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_aws.lb import Lb
from cdktf_cdktf_provider_aws.lb_listener import LbListener, LbListenerDefaultAction
from cdktf_cdktf_provider_aws.lb_target_group import LbTargetGroup
from constructs import Construct

from constructs_lib.policy import skip_checks
from constructs_lib.storage import ALB_LOG_PREFIX

HEALTH_CHECK_PATH = "/health"

_NO_WAF = (
    "no WAF web ACL: MLflow is reachable only from mlflow.load_balancer.ingress_cidrs; attaching a "
    "WAF is an account-level decision outside this stack"
)


@dataclass(frozen=True)
class LoadBalancerProps:
    name: str
    certificate_arn: str  # an existing certificate, or constructs_lib.certificate's issued one
    ssl_policy: str
    deletion_protection: bool
    idle_timeout_seconds: int
    subnet_ids: list[str]
    security_group_id: str
    vpc_id: str
    target_port: int
    log_bucket_name: str
    # The log bucket's policy: ELB checks that it may write there when the load balancer is created.
    depends_on: Sequence[ITerraformDependable] = field(default_factory=tuple)


class LoadBalancer(Construct):
    """``aws_lb.mlflow``, ``aws_lb_target_group.mlflow`` and ``aws_lb_listener.{http,https}``."""

    def __init__(self, scope: Construct, construct_id: str, props: LoadBalancerProps) -> None:
        super().__init__(scope, construct_id)
        s = props
        name = s.name
        self._lb = Lb(
            self,
            "alb",
            name=name,
            load_balancer_type="application",
            internal=False,
            subnets=s.subnet_ids,
            security_groups=[s.security_group_id],
            drop_invalid_header_fields=True,
            enable_deletion_protection=s.deletion_protection,
            idle_timeout=s.idle_timeout_seconds,
            access_logs={"bucket": s.log_bucket_name, "prefix": ALB_LOG_PREFIX, "enabled": True},
            depends_on=list(s.depends_on),
        )
        self._lb.override_logical_id("mlflow")
        lb_skips = {"CKV2_AWS_28": _NO_WAF}
        if not s.deletion_protection:
            lb_skips["CKV_AWS_150"] = (
                "deletion protection off by this non-production environment's "
                "mlflow.load_balancer.deletion_protection; production requires it"
            )
        skip_checks(self._lb, lb_skips)

        # nginx listens on plain HTTP inside the VPC; TLS ends at the load balancer.
        self._target_group = LbTargetGroup(
            self,
            "target_group",
            name=name,
            port=s.target_port,
            protocol="HTTP",
            vpc_id=s.vpc_id,
            target_type="instance",
            deregistration_delay="30",
            health_check={
                "enabled": True,
                "path": HEALTH_CHECK_PATH,
                "protocol": "HTTP",
                "matcher": "200",
                "interval": 30,
                "timeout": 5,
                "healthy_threshold": 2,
                "unhealthy_threshold": 3,
            },
        )
        self._target_group.override_logical_id("mlflow")

        https = LbListener(
            self,
            "https",
            load_balancer_arn=self._lb.arn,
            port=443,
            protocol="HTTPS",
            ssl_policy=s.ssl_policy,
            certificate_arn=s.certificate_arn,
            default_action=[LbListenerDefaultAction(type="forward", target_group_arn=self._target_group.arn)],
        )
        https.override_logical_id("https")
        http = LbListener(
            self,
            "http",
            load_balancer_arn=self._lb.arn,
            port=80,
            protocol="HTTP",
            default_action=[
                LbListenerDefaultAction(
                    type="redirect",
                    redirect={"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"},
                )
            ],
        )
        http.override_logical_id("http")

    @property
    def dns_name(self) -> str:
        return self._lb.dns_name

    @property
    def zone_id(self) -> str:
        """The load balancer's hosted zone (for an alias record)."""
        return self._lb.zone_id

    @property
    def target_group_arn(self) -> str:
        return self._target_group.arn

    @property
    def load_balancer_dimensions(self) -> dict[str, str]:
        """CloudWatch dimensions of the load balancer's own metrics."""
        return {"LoadBalancer": self._lb.arn_suffix}

    @property
    def target_dimensions(self) -> dict[str, str]:
        """CloudWatch dimensions of the target group's metrics (healthy hosts, ...)."""
        return {**self.load_balancer_dimensions, "TargetGroup": self._target_group.arn_suffix}
