"""Security groups of every tier, and the MLflow instances' IAM role.

Rules are separate resources (the ALB and app groups reference each other, which inline rules
cannot express without a cycle); each rule says why it exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cdktf import TerraformResource
from cdktf_cdktf_provider_aws.iam_instance_profile import IamInstanceProfile
from cdktf_cdktf_provider_aws.iam_policy import IamPolicy
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from constructs_lib.network import assume_role_policy
from constructs_lib.policy import skip_checks

HTTPS = 443
HTTP = 80
NGINX_PORT = 80
MYSQL_PORT = 3306
REDIS_PORT = 6379


@dataclass(frozen=True)
class SecurityGroupsProps:
    name: str
    vpc_id: str
    ingress_cidrs: tuple[str, ...]
    cache: bool  # a group for the Redis cache


class SecurityGroups(Construct):
    """``aws_security_group.{alb,mlflow_app,database,db_users,elasticache,vpc_endpoints}`` and
    their rules.

    Handles: the group ids (``alb_id``, ``app_id``, ``database_id``, ``db_users_id``,
    ``endpoints_id``, ``cache_id``) and ``db_users_rules`` (what the database-user function's
    network path consists of).
    """

    def __init__(self, scope: Construct, construct_id: str, props: SecurityGroupsProps) -> None:
        super().__init__(scope, construct_id)
        self._vpc_id = props.vpc_id
        self._name = props.name
        self._alb = self._group("alb", "MLflow load balancer: HTTP(S) from the allowed networks")
        self._app = self._group("mlflow_app", "MLflow instances: nginx, from the load balancer only")
        # The database and endpoint groups now also admit the database-user function: their
        # descriptions stay (a new description replaces a group, which its members block); the
        # rules say who may connect.
        self._database = self._group("database", "MLflow RDS MySQL: from the MLflow instances only")
        self._endpoints = self._group(
            "vpc_endpoints", "Interface VPC endpoints: HTTPS from the MLflow instances"
        )
        self._db_users = self._group(
            "db_users",
            "MLflow database-user function: to the database, Secrets Manager and the RDS CA bundle",
        )
        self._cache = (
            self._group("elasticache", "MLflow ElastiCache Redis: from the MLflow instances only")
            if props.cache
            else None
        )

        # Every environment serves HTTPS; port 80 only redirects to it.
        for i, cidr in enumerate(props.ingress_cidrs):
            self._ingress(f"alb_https_{i}", self._alb, HTTPS, f"HTTPS from allowed network {cidr}", cidr=cidr)
            self._ingress(
                f"alb_http_{i}", self._alb, HTTP, f"HTTP from {cidr}, only redirected to HTTPS", cidr=cidr
            )
        self._egress("alb_to_app", self._alb, NGINX_PORT, "To nginx on the MLflow instances", group=self._app)

        app_from_alb = self._ingress(
            "app_from_alb", self._app, NGINX_PORT, "nginx, from the load balancer", group=self._alb
        )
        skip_checks(
            app_from_alb,
            {
                "CKV_AWS_260": "false positive: the source is the load balancer's security group "
                "(referenced_security_group_id), which checkov reads as no source, i.e. open"
            },
        )
        self._egress(
            "app_https_out",
            self._app,
            HTTPS,
            "HTTPS to AWS APIs, S3 and package indexes (via endpoints and NAT)",
            cidr="0.0.0.0/0",
        )
        self._egress(
            "app_to_database", self._app, MYSQL_PORT, "MySQL, to the backend store", group=self._database
        )
        self._ingress(
            "database_from_app",
            self._database,
            MYSQL_PORT,
            "MySQL from the MLflow instances",
            group=self._app,
        )
        self._ingress(
            "endpoints_from_app", self._endpoints, HTTPS, "HTTPS from the MLflow instances", group=self._app
        )
        # The database-user function (constructs_lib.db_users): egress only, to what it calls.
        self._db_users_rules = (
            self._egress(
                "db_users_to_database",
                self._db_users,
                MYSQL_PORT,
                "MySQL, to create the MLflow database user",
                group=self._database,
            ),
            self._ingress(
                "database_from_db_users",
                self._database,
                MYSQL_PORT,
                "MySQL from the database-user function",
                group=self._db_users,
            ),
            self._egress(
                "db_users_https_out",
                self._db_users,
                HTTPS,
                "HTTPS to Secrets Manager (endpoint), the ElastiCache API (the Redis token) and the RDS CA "
                "bundle (truststore.pki.rds.amazonaws.com), via NAT but for the endpoint",
                cidr="0.0.0.0/0",
            ),
            self._ingress(
                "endpoints_from_db_users",
                self._endpoints,
                HTTPS,
                "HTTPS from the database-user function (Secrets Manager)",
                group=self._db_users,
            ),
        )
        if self._cache is not None:
            self._egress(
                "app_to_cache", self._app, REDIS_PORT, "Redis (TLS), to the cache", group=self._cache
            )
            self._ingress(
                "cache_from_app",
                self._cache,
                REDIS_PORT,
                "Redis (TLS) from the MLflow instances",
                group=self._app,
            )

    @property
    def alb_id(self) -> str:
        return self._alb.id

    @property
    def app_id(self) -> str:
        return self._app.id

    @property
    def database_id(self) -> str:
        return self._database.id

    @property
    def db_users_id(self) -> str:
        return self._db_users.id

    @property
    def db_users_rules(self) -> tuple[TerraformResource, ...]:
        return self._db_users_rules

    @property
    def endpoints_id(self) -> str:
        return self._endpoints.id

    @property
    def cache_id(self) -> str | None:
        return self._cache.id if self._cache is not None else None

    def _group(self, address: str, description: str) -> SecurityGroup:
        group = SecurityGroup(
            self,
            address,
            name=f"{self._name}-{address.replace('_', '-')}",
            description=description,
            vpc_id=self._vpc_id,
            tags={"Name": f"{self._name}-{address.replace('_', '-')}"},
        )
        group.override_logical_id(address)
        return group

    def _rule_target(self, cidr: str | None, group: SecurityGroup | None) -> dict[str, Any]:
        if group is not None and cidr is None:
            return {"referenced_security_group_id": group.id}
        if cidr is not None and group is None:
            return {"cidr_ipv4": cidr}
        raise ValueError("a rule needs exactly one of cidr and group")

    def _ingress(
        self,
        address: str,
        to: SecurityGroup,
        port: int,
        description: str,
        *,
        cidr: str | None = None,
        group: SecurityGroup | None = None,
    ) -> VpcSecurityGroupIngressRule:
        rule = VpcSecurityGroupIngressRule(
            self,
            address,
            security_group_id=to.id,
            description=description,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            **self._rule_target(cidr, group),
        )
        rule.override_logical_id(address)
        return rule

    def _egress(
        self,
        address: str,
        source: SecurityGroup,
        port: int,
        description: str,
        *,
        cidr: str | None = None,
        group: SecurityGroup | None = None,
    ) -> VpcSecurityGroupEgressRule:
        rule = VpcSecurityGroupEgressRule(
            self,
            address,
            security_group_id=source.id,
            description=description,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            **self._rule_target(cidr, group),
        )
        rule.override_logical_id(address)
        return rule


@dataclass(frozen=True)
class InstanceRoleProps:
    """Everything the MLflow instances may touch: the IAM policies are scoped to these ARNs."""

    name: str
    partition: str
    region: str
    account_id: str
    bucket_arn: str
    parameter_path: str
    log_group_arns: tuple[str, ...]
    kms_key_arn: str
    # Secrets the instances read (the admin's password while there is no admin, the Flask secret
    # key, the Redis token); never the database's master secret.
    secret_arns: tuple[str, ...]
    # The database login: IAM authentication as db_user on the instance with this resource id.
    db_resource_id: str
    db_user: str
    metrics_namespace: str
    # The group the instances belong to (named like the stack's resources): a start refused for
    # its database schema reports its own instance unhealthy (constructs_lib/instance/launch.py).
    autoscaling_group_name: str


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


class InstanceRole(Construct):
    """``aws_iam_role.mlflow_instance_role``, its five policies and the instance profile.

    Shell access is SSM Session Manager (AWS-managed core policy), replacing the seed's key pair.
    """

    def __init__(self, scope: Construct, construct_id: str, props: InstanceRoleProps) -> None:
        super().__init__(scope, construct_id)
        s = props
        name = s.name
        self._role = IamRole(
            self,
            "role",
            name=f"{name}-instance",
            assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
        )
        self._role.override_logical_id("mlflow_instance_role")
        parameters = f"arn:{s.partition}:ssm:{s.region}:{s.account_id}:parameter{s.parameter_path}"
        # No statement without a secret (the cache off): an empty Resource list is not a policy.
        read_secrets: list[dict[str, Any]] = []
        if s.secret_arns:
            read_secrets.append(
                {
                    "Sid": "ReadSecrets",
                    "Effect": "Allow",
                    "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                    "Resource": list(s.secret_arns),
                }
            )
        # The db-user resource of IAM database authentication (Service Authorization Reference,
        # Amazon RDS IAM Authentication: arn:${Partition}:rds-db:${Region}:${Account}:dbuser:
        # ${DbiResourceId}/${DbUserName}).
        db_user_arn = (
            f"arn:{s.partition}:rds-db:{s.region}:{s.account_id}:dbuser:{s.db_resource_id}/{s.db_user}"
        )
        policies = {
            "mlflow_s3_policy": (
                "MLflow artifacts: read and write this stack's artifact bucket",
                _policy(
                    {
                        "Sid": "ListArtifactBucket",
                        "Effect": "Allow",
                        "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                        "Resource": s.bucket_arn,
                    },
                    {
                        "Sid": "ReadWriteArtifacts",
                        "Effect": "Allow",
                        "Action": [
                            "s3:GetObject",
                            "s3:PutObject",
                            "s3:DeleteObject",
                            "s3:AbortMultipartUpload",
                        ],
                        "Resource": f"{s.bucket_arn}/*",
                    },
                ),
            ),
            "mlflow_cloudwatch_policy": (
                "MLflow logs and agent metrics: this stack's log groups only",
                _policy(
                    {
                        "Sid": "WriteLogs",
                        "Effect": "Allow",
                        "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                        "Resource": [f"{arn}:*" for arn in s.log_group_arns],
                    },
                    {
                        # The agent resolves ${aws:AutoScalingGroupName} from the instance's tags.
                        # DescribeTags has no resource-level permissions (IAM service authorization
                        # reference), so "*" it is; it only reads tags, in this region.
                        "Sid": "AgentReadsInstanceTags",
                        "Effect": "Allow",
                        "Action": "ec2:DescribeTags",
                        "Resource": "*",
                        "Condition": {"StringEquals": {"aws:RequestedRegion": s.region}},
                    },
                    {
                        # PutMetricData has no resource-level permissions; the namespace narrows it.
                        "Sid": "PutAgentMetrics",
                        "Effect": "Allow",
                        "Action": "cloudwatch:PutMetricData",
                        "Resource": "*",
                        "Condition": {"StringEquals": {"cloudwatch:namespace": s.metrics_namespace}},
                    },
                ),
            ),
            "mlflow_ssm_policy": (
                "MLflow settings and credentials: this stack's parameters and secrets",
                _policy(
                    {
                        "Sid": "ReadParameters",
                        "Effect": "Allow",
                        "Action": ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
                        "Resource": [parameters, f"{parameters}/*"],
                    },
                    *read_secrets,
                ),
            ),
            "mlflow_rds_policy": (
                "MLflow database login: IAM authentication as the MLflow user",
                _policy(
                    {
                        "Sid": "ConnectAsMlflowUser",
                        "Effect": "Allow",
                        "Action": "rds-db:connect",
                        "Resource": db_user_arn,
                    },
                    {
                        # A start refused for its schema marks the instance unhealthy at once, so an
                        # instance refresh stops instead of waiting out the health-check grace.
                        # Resource-level permissions: the autoScalingGroup resource type (Service
                        # Authorization Reference, Amazon EC2 Auto Scaling).
                        "Sid": "ReportOwnHealth",
                        "Effect": "Allow",
                        "Action": "autoscaling:SetInstanceHealth",
                        "Resource": (
                            f"arn:{s.partition}:autoscaling:{s.region}:{s.account_id}:autoScalingGroup:*:"
                            f"autoScalingGroupName/{s.autoscaling_group_name}"
                        ),
                    },
                ),
            ),
            "mlflow_kms_policy": (
                "MLflow encryption: use this stack's KMS key",
                _policy(
                    # Still needed without the master secret: the SecureString settings, the
                    # artifacts (SSE-KMS: Decrypt to read, GenerateDataKey to write), the Redis token.
                    {
                        "Sid": "UseStackKey",
                        "Effect": "Allow",
                        "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                        "Resource": s.kms_key_arn,
                    }
                ),
            ),
        }
        self._attachments: list[IamRolePolicyAttachment] = []
        for address, (description, document) in policies.items():
            policy = IamPolicy(
                self,
                address,
                name=f"{name}-{address.removeprefix('mlflow_').replace('_', '-')}",
                description=description,
                policy=document,
            )
            policy.override_logical_id(address)
            attachment = IamRolePolicyAttachment(
                self, f"{address}_attachment", role=self._role.name, policy_arn=policy.arn
            )
            attachment.override_logical_id(address)
            self._attachments.append(attachment)
        IamRolePolicyAttachment(
            self,
            "ssm_core",
            role=self._role.name,
            policy_arn=f"arn:{s.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore",
        ).override_logical_id("mlflow_ssm_session_manager")
        self._profile = IamInstanceProfile(self, "profile", name=f"{name}-instance", role=self._role.name)
        self._profile.override_logical_id("mlflow_instance_profile")

    @property
    def profile_arn(self) -> str:
        return self._profile.arn

    @property
    def attachments(self) -> tuple[IamRolePolicyAttachment, ...]:
        """The role's policy attachments: instances must not boot before these exist (a policy
        that exists but is not attached yet grants nothing)."""
        return tuple(self._attachments)
