"""The GitHub Actions identities of one environment: the account's GitHub OIDC provider (created or
looked up), the plan role, the deploy role and the permissions boundary every role the deploy role
creates must carry (docs/decisions/ci-identities.md).

The plan role's reads come from ``constructs_lib.ci_read_actions`` (the provider's refresh calls per
type), scoped to the environment's names wherever the service has resource-level permissions; it
writes nothing but the state lock (``state_plan_policy``). The deploy role writes what
``mlflow-<env>`` manages, under the same names, and nothing of ``bootstrap-<env>``: that stack holds
these roles and is applied by an administrator only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.data_aws_iam_openid_connect_provider import DataAwsIamOpenidConnectProvider
from cdktf_cdktf_provider_aws.iam_openid_connect_provider import IamOpenidConnectProvider
from cdktf_cdktf_provider_aws.iam_policy import IamPolicy
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from constructs import Construct

from constructs_lib.account import Account
from constructs_lib.ci_read_actions import DECRYPTS, READS
from platform_config import naming

Statement = dict[str, Any]

# Actions of the table that take no resource ARN (Service Authorization Reference: no resource
# type), granted on "*" in the environment's regions; parliament (tests/policy) fails when one of
# them does support a resource, or when another action is left on "*".
WILDCARD_ONLY = frozenset(
    {
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribeNotificationConfigurations",
        "autoscaling:DescribePolicies",
        "ec2:DescribeAddresses",
        "ec2:DescribeAddressesAttribute",
        "ec2:DescribeAvailabilityZones",
        "ec2:DescribeFlowLogs",
        "ec2:DescribeInternetGateways",
        "ec2:DescribeLaunchTemplateVersions",
        "ec2:DescribeLaunchTemplates",
        "ec2:DescribeNatGateways",
        "ec2:DescribeNetworkAcls",
        "ec2:DescribePrefixLists",
        "ec2:DescribeRouteTables",
        "ec2:DescribeSecurityGroupRules",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcEndpoints",
        "ec2:DescribeVpcs",
        "elasticloadbalancing:DescribeListenerAttributes",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeLoadBalancerAttributes",
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeRules",
        "elasticloadbalancing:DescribeTags",
        "elasticloadbalancing:DescribeTargetGroupAttributes",
        "elasticloadbalancing:DescribeTargetGroups",
        "kms:ListAliases",
        "logs:DescribeLogGroups",
        "route53:ListHostedZones",
        "sns:GetSubscriptionAttributes",
        "ssm:DescribeParameters",
    }
)
# Global services: no aws:RequestedRegion condition on them.
GLOBAL_SERVICES = frozenset({"iam", "route53", "s3"})


@dataclass(frozen=True)
class CiIdentitiesProps:
    env: str
    repository: str  # owner/name
    create_oidc_provider: bool
    account: Account
    region: str
    regions: tuple[str, ...]  # every region the environment's stacks use (replica included)
    plan_role_name: str
    deploy_role_name: str
    boundary_name: str
    state_plan_policy: str
    state_apply_policy: str


def trust_policy(provider_arn: str, repository: str, github_environment: str) -> str:
    """Only a GitHub Actions job of ``repository`` running in ``github_environment`` (token audience
    ``sts.amazonaws.com``); StringEquals on both claims, never StringLike."""
    host = naming.GITHUB_OIDC_HOST
    return _policy(
        {
            "Sid": "GitHubActionsJobsOfOneEnvironment",
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{host}:aud": naming.GITHUB_OIDC_AUDIENCE,
                    f"{host}:sub": naming.github_subject(repository, github_environment),
                }
            },
        }
    )


def _policy(*statements: Statement) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


class Arns:
    """The environment's ARN patterns (``mlopspltf-<env>-...``) for one partition and account."""

    def __init__(self, props: CiIdentitiesProps) -> None:
        self.p = props.account.partition
        self.a = props.account.account_id
        self.r = props.region
        self.prefix = naming.resource_prefix(props.env)  # mlopspltf-<env>
        self.env = props.env

    def regional(self, service: str, resource: str, region: str | None = None) -> str:
        return f"arn:{self.p}:{service}:{region or self.r}:{self.a}:{resource}"

    def iam(self, resource: str) -> str:
        return f"arn:{self.p}:iam::{self.a}:{resource}"

    def s3(self, bucket: str) -> str:
        return f"arn:{self.p}:s3:::{bucket}"

    @property
    def tags(self) -> dict[str, str]:
        """Every resource of the environment carries these (provider default_tags)."""
        return {"aws:ResourceTag/Project": naming.PROJECT, "aws:ResourceTag/Environment": self.env}


def _read_resources(arns: Arns, region_wildcard: bool) -> dict[str, list[str]]:
    """Service -> the environment's resources its read actions are scoped to."""
    e = arns.prefix
    region = "*" if region_wildcard else None
    return {
        "acm": [arns.regional("acm", "certificate/*")],
        "cloudwatch": [arns.regional("cloudwatch", f"alarm:{e}-*")],
        "dynamodb": [arns.regional("dynamodb", f"table/{e}-*")],
        # VPC ids are random: every VPC of the region (what DescribeVpcAttribute accepts).
        "ec2": [arns.regional("ec2", "vpc/*")],
        "elasticache": [
            arns.regional("elasticache", f"{kind}:{e}-*")
            for kind in ("replicationgroup", "cluster", "parametergroup", "subnetgroup")
        ],
        "iam": [
            arns.iam(f"role/{e}-*"),
            arns.iam(f"policy/{e}-*"),
            arns.iam(f"instance-profile/{e}-*"),
            arns.iam(f"oidc-provider/{naming.GITHUB_OIDC_HOST}"),
            arns.iam("role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"),
        ],
        "kms": [arns.regional("kms", "key/*", region)],
        "lambda": [arns.regional("lambda", f"function:{e}-*")],
        "logs": [
            arns.regional("logs", f"log-group:/{e}/*"),
            arns.regional("logs", f"log-group:/aws/lambda/{e}-*"),
            arns.regional("logs", f"log-group:/aws/rds/instance/{e}-*"),
        ],
        "rds": [arns.regional("rds", f"{kind}:{e}-*") for kind in ("db", "pg", "subgrp")],
        "route53": [f"arn:{arns.p}:route53:::hostedzone/*"],
        "s3": [arns.s3(f"{e}-*")],
        "secretsmanager": [arns.regional("secretsmanager", f"secret:{e}-*")],
        "sns": [arns.regional("sns", f"{e}-*")],
        "ssm": [arns.regional("ssm", f"parameter/{e}/*")],
    }


# Services whose keys (and certificates) have random ids: scoped by the environment's tags.
_BY_TAG = frozenset({"kms", "acm"})


def plan_read_statements(props: CiIdentitiesProps, actions: Iterable[str]) -> list[Statement]:
    """The table's actions as statements: "*" only for WILDCARD_ONLY actions (in the environment's
    regions), every other action on the environment's resources, one statement per service."""
    arns = Arns(props)
    wanted = set(actions)
    regions = {"aws:RequestedRegion": list(props.regions)}
    resources = _read_resources(arns, region_wildcard=len(props.regions) > 1)
    wildcard = sorted(wanted & WILDCARD_ONLY)
    scoped: dict[str, list[str]] = {}
    for action in sorted(wanted - WILDCARD_ONLY):
        scoped.setdefault(action.split(":")[0], []).append(action)
    statements: list[Statement] = []
    if wildcard:
        statements.append(
            {
                "Sid": "DescribeWithoutResourceLevelPermissions",
                "Effect": "Allow",
                "Action": wildcard,
                "Resource": "*",
                "Condition": {"StringEquals": regions},
            }
        )
    for service, service_actions in sorted(scoped.items()):
        if service not in resources:
            raise ValueError(f"no resource scope for {service} (actions {service_actions})")
        statement: Statement = {
            "Sid": f"Read{service.title().replace('-', '')}OfThisEnvironment",
            "Effect": "Allow",
            "Action": service_actions,
            "Resource": resources[service],
        }
        if service in _BY_TAG:
            statement["Condition"] = {"StringEquals": arns.tags}
        statements.append(statement)
    return statements


def plan_decrypt_statements(props: CiIdentitiesProps) -> list[Statement]:
    """kms:Decrypt of what a refresh reads decrypted (``DECRYPTS``): only through that service, only
    keys of this environment, and for SSM only its own parameters."""
    if not DECRYPTS:
        return []
    arns = Arns(props)
    via = [f"{service}.{region}.amazonaws.com" for service in sorted(DECRYPTS) for region in props.regions]
    return [
        {
            "Sid": "DecryptWhatTheRefreshReads",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": arns.regional("kms", "key/*"),
            "Condition": {"StringEquals": {**arns.tags, "kms:ViaService": via}},
        }
    ]


# The deploy role's writes, in two managed policies (one would exceed IAM's 6,144 characters).
DEPLOY_NETWORK_SIDS = frozenset(
    {
        "MlflowLoadBalancer",
        "MlflowAutoScaling",
        "MlflowKeyCreated",
        "MlflowKeyTaggedAtCreation",
        "MlflowKeyManaged",
        "MlflowKeyAlias",
        "MlflowNetworkInTheRegion",
    }
)


def deploy_write_statements(props: CiIdentitiesProps, boundary_arn: str) -> list[Statement]:
    """What applying ``mlflow-<env>`` writes, by name prefix (``mlopspltf-<env>-mlflow``) where the
    service has names in its ARNs, by tag where ids are random; the rest is region-scoped and listed
    in docs/decisions/ci-identities.md. Nothing here reaches ``bootstrap-<env>``'s names."""
    arns = Arns(props)
    m = f"{arns.prefix}-mlflow"
    region = {"aws:RequestedRegion": props.region}
    request_tags = {"aws:RequestTag/Project": naming.PROJECT, "aws:RequestTag/Environment": props.env}
    roles = arns.iam(f"role/{m}-*")
    return [
        {
            "Sid": "MlflowBuckets",
            "Effect": "Allow",
            "Action": [
                "s3:CreateBucket",
                "s3:DeleteBucket",
                "s3:DeleteBucketPolicy",
                "s3:PutBucketLogging",
                "s3:PutBucketOwnershipControls",
                "s3:PutBucketPolicy",
                "s3:PutBucketPublicAccessBlock",
                "s3:PutBucketTagging",
                "s3:PutBucketVersioning",
                "s3:PutEncryptionConfiguration",
                "s3:PutLifecycleConfiguration",
            ],
            "Resource": arns.s3(f"{m}-*"),
        },
        {
            "Sid": "MlflowRolesCarryTheBoundary",
            "Effect": "Allow",
            "Action": ["iam:CreateRole", "iam:PutRolePermissionsBoundary"],
            "Resource": roles,
            "Condition": {"ArnEquals": {"iam:PermissionsBoundary": boundary_arn}},
        },
        {
            "Sid": "MlflowRolesAndPolicies",
            "Effect": "Allow",
            "Action": [
                "iam:AddRoleToInstanceProfile",
                "iam:AttachRolePolicy",
                "iam:CreateInstanceProfile",
                "iam:CreatePolicy",
                "iam:CreatePolicyVersion",
                "iam:DeleteInstanceProfile",
                "iam:DeletePolicy",
                "iam:DeletePolicyVersion",
                "iam:DeleteRole",
                "iam:DeleteRolePolicy",
                "iam:DetachRolePolicy",
                "iam:ListInstanceProfilesForRole",
                "iam:ListPolicyVersions",
                "iam:PassRole",
                "iam:PutRolePolicy",
                "iam:RemoveRoleFromInstanceProfile",
                "iam:TagInstanceProfile",
                "iam:TagPolicy",
                "iam:TagRole",
                "iam:UntagRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:UpdateRole",
                "iam:UpdateRoleDescription",
            ],
            "Resource": [roles, arns.iam(f"policy/{m}-*"), arns.iam(f"instance-profile/{m}-*")],
        },
        {
            "Sid": "AutoScalingServiceLinkedRole",
            "Effect": "Allow",
            "Action": "iam:CreateServiceLinkedRole",
            "Resource": arns.iam(
                "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
            ),
            "Condition": {"StringEquals": {"iam:AWSServiceName": "autoscaling.amazonaws.com"}},
        },
        {
            "Sid": "MlflowDatabase",
            "Effect": "Allow",
            "Action": [
                "rds:AddTagsToResource",
                "rds:CreateDBInstance",
                "rds:CreateDBParameterGroup",
                "rds:CreateDBSubnetGroup",
                "rds:DeleteDBInstance",
                "rds:DeleteDBParameterGroup",
                "rds:DeleteDBSubnetGroup",
                "rds:ModifyDBInstance",
                "rds:ModifyDBParameterGroup",
                "rds:ModifyDBSubnetGroup",
                "rds:RebootDBInstance",
                "rds:RemoveTagsFromResource",
                "rds:ResetDBParameterGroup",
            ],
            "Resource": [
                arns.regional("rds", f"{kind}:{m}*") for kind in ("db", "pg", "subgrp", "snapshot", "og")
            ],
        },
        {
            "Sid": "MlflowCache",
            "Effect": "Allow",
            "Action": [
                "elasticache:AddTagsToResource",
                "elasticache:CreateCacheParameterGroup",
                "elasticache:CreateCacheSubnetGroup",
                "elasticache:CreateReplicationGroup",
                "elasticache:DeleteCacheParameterGroup",
                "elasticache:DeleteCacheSubnetGroup",
                "elasticache:DeleteReplicationGroup",
                "elasticache:ModifyCacheParameterGroup",
                "elasticache:ModifyCacheSubnetGroup",
                "elasticache:ModifyReplicationGroup",
                "elasticache:RemoveTagsFromResource",
            ],
            "Resource": [
                arns.regional("elasticache", f"{kind}:{m}*")
                for kind in ("replicationgroup", "cluster", "parametergroup", "subnetgroup", "snapshot")
            ],
        },
        {
            "Sid": "MlflowFunction",
            "Effect": "Allow",
            "Action": [
                "lambda:CreateFunction",
                "lambda:DeleteFunction",
                "lambda:InvokeFunction",
                "lambda:PublishVersion",
                "lambda:TagResource",
                "lambda:UntagResource",
                "lambda:UpdateFunctionCode",
                "lambda:UpdateFunctionConfiguration",
            ],
            "Resource": arns.regional("lambda", f"function:{m}-*"),
        },
        {
            "Sid": "MlflowLogGroups",
            "Effect": "Allow",
            "Action": [
                "logs:AssociateKmsKey",
                "logs:CreateLogGroup",
                "logs:DeleteLogGroup",
                "logs:DeleteRetentionPolicy",
                "logs:DisassociateKmsKey",
                "logs:PutRetentionPolicy",
                "logs:TagLogGroup",
                "logs:TagResource",
                "logs:UntagLogGroup",
                "logs:UntagResource",
            ],
            "Resource": [
                arns.regional("logs", f"log-group:/{arns.prefix}/mlflow/*"),
                arns.regional("logs", f"log-group:/aws/lambda/{m}-*"),
                arns.regional("logs", f"log-group:/aws/rds/instance/{m}/*"),
            ],
        },
        {
            "Sid": "MlflowAlarms",
            "Effect": "Allow",
            "Action": [
                "cloudwatch:DeleteAlarms",
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:TagResource",
                "cloudwatch:UntagResource",
            ],
            "Resource": arns.regional("cloudwatch", f"alarm:{m}-*"),
        },
        {
            "Sid": "MlflowTopic",
            "Effect": "Allow",
            "Action": [
                "sns:CreateTopic",
                "sns:DeleteTopic",
                "sns:SetTopicAttributes",
                "sns:Subscribe",
                "sns:TagResource",
                "sns:UntagResource",
            ],
            "Resource": arns.regional("sns", f"{m}-*"),
        },
        {
            # Unsubscribe takes the subscription, which IAM does not model: "*" only.
            "Sid": "MlflowTopicUnsubscribe",
            "Effect": "Allow",
            "Action": "sns:Unsubscribe",
            "Resource": "*",
            "Condition": {"StringEquals": region},
        },
        {
            "Sid": "MlflowSettings",
            "Effect": "Allow",
            "Action": [
                "ssm:AddTagsToResource",
                "ssm:DeleteParameter",
                "ssm:PutParameter",
                "ssm:RemoveTagsFromResource",
            ],
            "Resource": arns.regional("ssm", f"parameter/{arns.prefix}/mlflow/*"),
        },
        {
            "Sid": "MlflowSecrets",
            "Effect": "Allow",
            "Action": [
                "secretsmanager:CreateSecret",
                "secretsmanager:DeleteSecret",
                "secretsmanager:PutSecretValue",
                "secretsmanager:TagResource",
                "secretsmanager:UntagResource",
                "secretsmanager:UpdateSecret",
            ],
            "Resource": arns.regional("secretsmanager", f"secret:{m}-*"),
        },
        {
            "Sid": "MlflowLoadBalancer",
            "Effect": "Allow",
            "Action": [
                "elasticloadbalancing:AddTags",
                "elasticloadbalancing:CreateListener",
                "elasticloadbalancing:CreateLoadBalancer",
                "elasticloadbalancing:CreateRule",
                "elasticloadbalancing:CreateTargetGroup",
                "elasticloadbalancing:DeleteListener",
                "elasticloadbalancing:DeleteLoadBalancer",
                "elasticloadbalancing:DeleteRule",
                "elasticloadbalancing:DeleteTargetGroup",
                "elasticloadbalancing:ModifyListener",
                "elasticloadbalancing:ModifyListenerAttributes",
                "elasticloadbalancing:ModifyLoadBalancerAttributes",
                "elasticloadbalancing:ModifyRule",
                "elasticloadbalancing:ModifyTargetGroup",
                "elasticloadbalancing:ModifyTargetGroupAttributes",
                "elasticloadbalancing:RemoveTags",
                "elasticloadbalancing:SetSecurityGroups",
                "elasticloadbalancing:SetSubnets",
            ],
            "Resource": [
                arns.regional("elasticloadbalancing", f"loadbalancer/app/{m}/*"),
                arns.regional("elasticloadbalancing", f"targetgroup/{m}/*"),
                arns.regional("elasticloadbalancing", f"listener/app/{m}/*"),
                arns.regional("elasticloadbalancing", f"listener-rule/app/{m}/*"),
            ],
        },
        {
            "Sid": "MlflowAutoScaling",
            "Effect": "Allow",
            "Action": [
                "autoscaling:CreateAutoScalingGroup",
                "autoscaling:CreateOrUpdateTags",
                "autoscaling:DeleteAutoScalingGroup",
                "autoscaling:DeleteNotificationConfiguration",
                "autoscaling:DeletePolicy",
                "autoscaling:DeleteTags",
                "autoscaling:PutNotificationConfiguration",
                "autoscaling:PutScalingPolicy",
                "autoscaling:StartInstanceRefresh",
                "autoscaling:UpdateAutoScalingGroup",
            ],
            "Resource": arns.regional("autoscaling", f"autoScalingGroup:*:autoScalingGroupName/{m}"),
        },
        {
            # Key ids are random: a new key must carry the environment's tags, an existing one
            # must have them. CreateKey itself has no resource (the request tags are its scope).
            "Sid": "MlflowKeyCreated",
            "Effect": "Allow",
            "Action": "kms:CreateKey",
            "Resource": "*",
            "Condition": {"StringEquals": {**request_tags, **region}},
        },
        {
            "Sid": "MlflowKeyTaggedAtCreation",
            "Effect": "Allow",
            "Action": "kms:TagResource",
            "Resource": arns.regional("kms", "key/*"),
            "Condition": {"StringEquals": request_tags},
        },
        {
            "Sid": "MlflowKeyManaged",
            "Effect": "Allow",
            "Action": [
                "kms:CreateGrant",
                "kms:Decrypt",
                "kms:EnableKeyRotation",
                "kms:Encrypt",
                "kms:GenerateDataKey",
                "kms:PutKeyPolicy",
                "kms:ScheduleKeyDeletion",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:UpdateKeyDescription",
            ],
            "Resource": arns.regional("kms", "key/*"),
            "Condition": {
                "StringEquals": {**arns.tags, "aws:ResourceTag/Stack": naming.stack_id("mlflow", props.env)}
            },
        },
        {
            "Sid": "MlflowKeyAlias",
            "Effect": "Allow",
            "Action": ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"],
            "Resource": [arns.regional("kms", f"alias/{m}*"), arns.regional("kms", "key/*")],
            "Condition": {"StringEquals": region},
        },
        {
            # EC2 ids are random, and several writes act on resources the stack did not tag
            # itself (the VPC's default security group, NACL and main route table): scoped to the
            # region only. docs/decisions/ci-identities.md lists this as what stays broad.
            "Sid": "MlflowNetworkInTheRegion",
            "Effect": "Allow",
            "Action": [
                "ec2:AllocateAddress",
                "ec2:AssociateRouteTable",
                "ec2:AttachInternetGateway",
                "ec2:AuthorizeSecurityGroupEgress",
                "ec2:AuthorizeSecurityGroupIngress",
                "ec2:CreateFlowLogs",
                "ec2:CreateInternetGateway",
                "ec2:CreateLaunchTemplate",
                "ec2:CreateLaunchTemplateVersion",
                "ec2:CreateNatGateway",
                "ec2:CreateRoute",
                "ec2:CreateRouteTable",
                "ec2:CreateSecurityGroup",
                "ec2:CreateSubnet",
                "ec2:CreateTags",
                "ec2:CreateVpc",
                "ec2:CreateVpcEndpoint",
                "ec2:DeleteFlowLogs",
                "ec2:DeleteInternetGateway",
                "ec2:DeleteLaunchTemplate",
                "ec2:DeleteNatGateway",
                "ec2:DeleteRoute",
                "ec2:DeleteRouteTable",
                "ec2:DeleteSecurityGroup",
                "ec2:DeleteSubnet",
                "ec2:DeleteTags",
                "ec2:DeleteVpc",
                "ec2:DeleteVpcEndpoints",
                "ec2:DetachInternetGateway",
                "ec2:DisassociateAddress",
                "ec2:DisassociateRouteTable",
                "ec2:ModifyLaunchTemplate",
                "ec2:ModifySecurityGroupRules",
                "ec2:ModifySubnetAttribute",
                "ec2:ModifyVpcAttribute",
                "ec2:ModifyVpcEndpoint",
                "ec2:ReleaseAddress",
                "ec2:ReplaceRoute",
                "ec2:RevokeSecurityGroupEgress",
                "ec2:RevokeSecurityGroupIngress",
                "ec2:RunInstances",
                "ec2:UpdateSecurityGroupRuleDescriptionsEgress",
                "ec2:UpdateSecurityGroupRuleDescriptionsIngress",
            ],
            "Resource": "*",
            "Condition": {"StringEquals": region},
        },
        {
            # Defence in depth (nothing above allows these): the roles it creates keep the
            # boundary, and the boundary keeps its one version.
            "Sid": "NoWayOutOfTheBoundary",
            "Effect": "Deny",
            "Action": [
                "iam:CreatePolicyVersion",
                "iam:DeletePolicy",
                "iam:DeletePolicyVersion",
                "iam:DeleteRolePermissionsBoundary",
                "iam:SetDefaultPolicyVersion",
            ],
            "Resource": [boundary_arn, roles],
        },
    ]


def boundary_statements(props: CiIdentitiesProps) -> list[Statement]:
    """The most a role created by the deploy role may ever do: the MLflow workloads' own calls, on
    this environment's resources (their own policies narrow it further)."""
    arns = Arns(props)
    m = f"{arns.prefix}-mlflow"
    return [
        {
            "Sid": "MlflowBucketsAndObjects",
            "Effect": "Allow",
            "Action": [
                "s3:AbortMultipartUpload",
                "s3:DeleteObject",
                "s3:GetBucketLocation",
                "s3:GetObject",
                "s3:ListBucket",
                "s3:PutObject",
            ],
            "Resource": [arns.s3(f"{m}-*"), arns.s3(f"{m}-*/*")],
        },
        {
            "Sid": "MlflowLogs",
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:DescribeLogStreams",
                "logs:PutLogEvents",
                "logs:PutRetentionPolicy",
            ],
            "Resource": [
                arns.regional("logs", f"log-group:/{arns.prefix}/mlflow/*"),
                arns.regional("logs", f"log-group:/aws/lambda/{m}-*"),
                arns.regional("logs", "log-group:RDSOSMetrics*"),
            ],
        },
        {
            "Sid": "MlflowSettingsAndSecrets",
            "Effect": "Allow",
            "Action": [
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
                "ssm:GetParameter",
                "ssm:GetParameters",
                "ssm:GetParametersByPath",
            ],
            "Resource": [
                arns.regional("ssm", f"parameter/{arns.prefix}/mlflow"),
                arns.regional("ssm", f"parameter/{arns.prefix}/mlflow/*"),
                arns.regional("secretsmanager", f"secret:{m}-*"),
                # The database's master secret, named by RDS.
                arns.regional("secretsmanager", "secret:rds!db-*"),
            ],
        },
        {
            # The provisioning function gives the stack's empty secrets their values and sets the
            # Redis AUTH token (constructs_lib/secrets.py); GetRandomPassword acts on no resource.
            "Sid": "MlflowGeneratedSecrets",
            "Effect": "Allow",
            "Action": ["secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"],
            "Resource": arns.regional("secretsmanager", f"secret:{m}-*"),
        },
        {
            "Sid": "RandomSecretValues",
            "Effect": "Allow",
            "Action": "secretsmanager:GetRandomPassword",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": props.region}},
        },
        {
            # An instance whose start is refused for its schema reports itself unhealthy.
            "Sid": "MlflowInstanceHealth",
            "Effect": "Allow",
            "Action": "autoscaling:SetInstanceHealth",
            "Resource": arns.regional("autoscaling", f"autoScalingGroup:*:autoScalingGroupName/{m}"),
        },
        {
            "Sid": "MlflowCacheToken",
            "Effect": "Allow",
            "Action": ["elasticache:DescribeReplicationGroups", "elasticache:ModifyReplicationGroup"],
            "Resource": arns.regional("elasticache", f"replicationgroup:{m}"),
        },
        {
            "Sid": "MlflowKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"],
            "Resource": arns.regional("kms", "key/*"),
            "Condition": {"StringEquals": arns.tags},
        },
        {
            "Sid": "MlflowDatabaseLogin",
            "Effect": "Allow",
            "Action": "rds-db:connect",
            "Resource": arns.regional("rds-db", "dbuser:*/*"),
        },
        {
            # The database-user function's network interfaces (ids are random).
            "Sid": "FunctionNetworkInterfaces",
            "Effect": "Allow",
            "Action": [
                "ec2:AssignPrivateIpAddresses",
                "ec2:CreateNetworkInterface",
                "ec2:DeleteNetworkInterface",
                "ec2:UnassignPrivateIpAddresses",
            ],
            "Resource": [
                arns.regional("ec2", "network-interface/*"),
                arns.regional("ec2", "subnet/*"),
                arns.regional("ec2", "security-group/*"),
            ],
        },
        {
            # Session Manager, the CloudWatch agent and the function's network lookups: calls
            # without resource-level permissions.
            "Sid": "AgentsAndLookups",
            "Effect": "Allow",
            "Action": [
                "cloudwatch:PutMetricData",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSubnets",
                "ec2:DescribeTags",
                "ec2messages:AcknowledgeMessage",
                "ec2messages:DeleteMessage",
                "ec2messages:FailMessage",
                "ec2messages:GetEndpoint",
                "ec2messages:GetMessages",
                "ec2messages:SendReply",
                "logs:DescribeLogGroups",
                "ssm:UpdateInstanceInformation",
                "ssmmessages:CreateControlChannel",
                "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel",
                "ssmmessages:OpenDataChannel",
            ],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": props.region}},
        },
    ]


class CiIdentities(Construct):
    """``aws_iam_openid_connect_provider.github`` (or the data source of that name), the roles
    ``aws_iam_role.ci_plan`` and ``aws_iam_role.ci_deploy`` with their managed policies, and
    ``aws_iam_policy.workload_boundary``."""

    def __init__(self, scope: Construct, construct_id: str, props: CiIdentitiesProps) -> None:
        super().__init__(scope, construct_id)
        arns = Arns(props)
        provider_arn = arns.iam(f"oidc-provider/{naming.GITHUB_OIDC_HOST}")
        if props.create_oidc_provider:
            provider = IamOpenidConnectProvider(
                self,
                "oidc_provider",
                url=f"https://{naming.GITHUB_OIDC_HOST}",
                client_id_list=[naming.GITHUB_OIDC_AUDIENCE],
                # Every environment of the account trusts it: never destroyed with one of them.
                lifecycle=TerraformResourceLifecycle(prevent_destroy=True),
            )
            provider.override_logical_id("github")
            self._provider_arn = provider.arn
        else:
            existing = DataAwsIamOpenidConnectProvider(self, "oidc_provider", arn=provider_arn)
            existing.override_logical_id("github")
            self._provider_arn = existing.arn

        boundary = self._managed_policy(
            "workload_boundary",
            props.boundary_name,
            "The most any role that the CI deploy role creates may do",
            boundary_statements(props),
        )
        self._boundary_arn = boundary.arn
        reads = plan_read_statements(props, (a for r in READS.values() for a in r.actions))
        describe = self._managed_policy(
            "ci_describe",
            f"{arns.prefix}-ci-describe",
            "Refresh, part 1: the calls without resource-level permissions, and decryption through "
            "the services that return decrypted values (constructs_lib/ci_read_actions.py)",
            [*(r for r in reads if r["Resource"] == "*"), *plan_decrypt_statements(props)],
        )
        read = self._managed_policy(
            "ci_read",
            f"{arns.prefix}-ci-read",
            "Refresh, part 2: this environment's resources (constructs_lib/ci_read_actions.py)",
            [r for r in reads if r["Resource"] != "*"],
        )
        plan_state = self._managed_policy_json(
            "ci_plan_state",
            f"{arns.prefix}-ci-plan-state",
            "Read every state, take and release its lock; no state write",
            props.state_plan_policy,
        )
        deploy_state = self._managed_policy_json(
            "ci_deploy_state",
            f"{arns.prefix}-ci-deploy-state",
            "Read and write every state, its lock and its digest",
            props.state_apply_policy,
        )
        # The boundary's ARN is known by name before it exists: the deploy policy needs no reference.
        boundary_arn = arns.iam(f"policy/{props.boundary_name}")
        writes = deploy_write_statements(props, boundary_arn)
        deploy_write = self._managed_policy(
            "ci_deploy_write",
            f"{arns.prefix}-ci-deploy-write",
            "Create, change and delete mlflow-<env>'s data, identities and services; nothing of bootstrap-<env>",
            [w for w in writes if w["Sid"] not in DEPLOY_NETWORK_SIDS],
        )
        deploy_network = self._managed_policy(
            "ci_deploy_network",
            f"{arns.prefix}-ci-deploy-network",
            "Create, change and delete mlflow-<env>'s network, load balancer, instances and key",
            [w for w in writes if w["Sid"] in DEPLOY_NETWORK_SIDS],
        )
        self._plan = self._role(
            "ci_plan",
            props.plan_role_name,
            trust_policy(
                self._provider_arn, props.repository, naming.ci_github_environment(props.env, "plan")
            ),
            f"GitHub Actions plans of {props.repository} (Environment {props.env}-plan): read only",
            (describe, read, plan_state),
        )
        self._deploy = self._role(
            "ci_deploy",
            props.deploy_role_name,
            trust_policy(
                self._provider_arn, props.repository, naming.ci_github_environment(props.env, "deploy")
            ),
            f"GitHub Actions deploys of {props.repository} (Environment {props.env}): applies mlflow-{props.env}",
            (describe, read, deploy_state, deploy_write, deploy_network),
        )

    def _managed_policy(
        self, address: str, name: str, description: str, statements: Sequence[Statement]
    ) -> IamPolicy:
        return self._managed_policy_json(address, name, description, _policy(*statements))

    def _managed_policy_json(self, address: str, name: str, description: str, document: str) -> IamPolicy:
        policy = IamPolicy(self, address, name=name, description=description, policy=document)
        policy.override_logical_id(address)
        return policy

    def _role(
        self, address: str, name: str, trust: str, description: str, policies: Sequence[IamPolicy]
    ) -> IamRole:
        role = IamRole(
            self,
            address,
            name=name,
            description=description,
            assume_role_policy=trust,
            max_session_duration=3600,
        )
        role.override_logical_id(address)
        for policy in policies:
            attachment_address = f"{address}_{policy.node.id}"
            attachment = IamRolePolicyAttachment(
                self, attachment_address, role=role.name, policy_arn=policy.arn
            )
            attachment.override_logical_id(attachment_address)
        return role

    @property
    def plan_role_arn(self) -> str:
        return self._plan.arn

    @property
    def deploy_role_arn(self) -> str:
        return self._deploy.arn

    @property
    def provider_arn(self) -> str:
        return self._provider_arn

    @property
    def boundary_arn(self) -> str:
        return self._boundary_arn
