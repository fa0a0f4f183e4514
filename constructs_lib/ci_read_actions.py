"""What the plan role may call: per resource and data source type the stacks synthesize, the IAM
actions of the pinned AWS provider's read (refresh) of that type.

Traced in the provider's source (/work/research/plan_role_actions.{md,json}: every Read followed to
its SDK calls at v5.42.x, changes up to 6.x checked where ``verified`` says so), plus the
transparent-tagging call the provider makes after a Read that sets no tags. Keys are Terraform
types, data sources as ``data.<type>``. Types of other providers (``random``, ``databricks``) are
listed with no action: their refresh calls no AWS API.

``tests/stacks/test_ci_identities.py`` fails when a synthesized stack of any shipped environment
has a type this table lacks, and when the table lists a type no stack synthesizes (unless it is in
``ANTICIPATED``, with the reason).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reads:
    actions: tuple[str, ...]
    source: str  # provider file: function chain
    verified: str  # how far the trace goes


READS: dict[str, Reads] = {
    "aws_acm_certificate": Reads(
        ("acm:DescribeCertificate", "acm:ListTagsForCertificate"),
        "internal/service/acm/certificate.go: resourceCertificateRead -> findCertificateByARN",
        "verified 5.42",
    ),
    "aws_acm_certificate_validation": Reads(
        ("acm:DescribeCertificate",),
        "internal/service/acm/certificate_validation.go: resourceCertificateValidationRead ->",
        "verified 5.42",
    ),
    "aws_autoscaling_group": Reads(
        ("autoscaling:DescribeAutoScalingGroups",),
        "internal/service/autoscaling/group.go: resourceGroupRead -> FindGroupByName -> findGroups",
        "verified 5.42; 6.x unverified (package moved to SDK v2, same API)",
    ),
    "aws_autoscaling_notification": Reads(
        ("autoscaling:DescribeNotificationConfigurations",),
        "internal/service/autoscaling/notification.go: resourceNotificationRead",
        "verified 5.42",
    ),
    "aws_autoscaling_policy": Reads(
        ("autoscaling:DescribePolicies",),
        "internal/service/autoscaling/policy.go: resourcePolicyRead -> FindScalingPolicy",
        "verified 5.42",
    ),
    "aws_cloudwatch_log_group": Reads(
        ("logs:DescribeLogGroups", "logs:ListTagsForResource", "logs:ListTagsLogGroup"),
        "internal/service/logs/group.go: resourceGroupRead -> findLogGroupByName",
        "5.42 reads tags with ListTagsLogGroup (a stored log_group_tags_gen.go still does); newer versions ListTagsForResource: both granted, both read only",
    ),
    "aws_cloudwatch_metric_alarm": Reads(
        ("cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource"),
        "internal/service/cloudwatch/metric_alarm.go: resourceMetricAlarmRead -> findMetricAlarmByName",
        "verified 5.42",
    ),
    "aws_db_instance": Reads(
        ("rds:DescribeDBInstances",),
        "internal/service/rds/instance.go: resourceInstanceRead -> findDBInstanceByIDSDKv1 ->",
        "verified 5.42; 6.x unverified (SDK v2 migration, same API)",
    ),
    "aws_db_parameter_group": Reads(
        ("rds:DescribeDBParameterGroups", "rds:DescribeDBParameters", "rds:ListTagsForResource"),
        "internal/service/rds/parameter_group.go: resourceParameterGroupRead",
        "verified 5.42",
    ),
    "aws_db_subnet_group": Reads(
        ("rds:DescribeDBSubnetGroups", "rds:ListTagsForResource"),
        "internal/service/rds/subnet_group.go: resourceSubnetGroupRead -> findDBSubnetGroups",
        "verified 5.42",
    ),
    "aws_default_security_group": Reads(
        ("ec2:DescribeSecurityGroups",),
        "internal/service/ec2/vpc_default_security_group.go: ReadWithoutTimeout = resourceSecurityGroupRead",
        "verified 5.42",
    ),
    "aws_dynamodb_table": Reads(
        (
            "dynamodb:DescribeContinuousBackups",
            "dynamodb:DescribeTable",
            "dynamodb:DescribeTimeToLive",
            "dynamodb:ListTagsOfResource",
        ),
        "internal/service/dynamodb/table.go: resourceTableRead",
        "verified 5.42; 6.x unverified",
    ),
    "aws_eip": Reads(
        ("ec2:DescribeAddresses", "ec2:DescribeAddressesAttribute"),
        "internal/service/ec2/ec2_eip.go: resourceEIPRead -> FindEIPByAllocationID (DescribeAddresses) [5.42]",
        "DescribeAddresses verified 5.42; DescribeAddressesAttribute from issue #41177 (not read in source)",
    ),
    "aws_elasticache_parameter_group": Reads(
        (
            "elasticache:DescribeCacheParameterGroups",
            "elasticache:DescribeCacheParameters",
            "elasticache:ListTagsForResource",
        ),
        "internal/service/elasticache/parameter_group.go: resourceParameterGroupRead",
        "verified 5.42",
    ),
    "aws_elasticache_replication_group": Reads(
        (
            "elasticache:DescribeCacheClusters",
            "elasticache:DescribeReplicationGroups",
            "elasticache:ListTagsForResource",
        ),
        "internal/service/elasticache/replication_group.go: resourceReplicationGroupRead",
        "verified 5.42; 6.x unverified",
    ),
    "aws_elasticache_subnet_group": Reads(
        ("elasticache:DescribeCacheSubnetGroups", "elasticache:ListTagsForResource"),
        "internal/service/elasticache/subnet_group.go: resourceSubnetGroupRead -> findCacheSubnetGroups",
        "verified 5.42",
    ),
    "aws_flow_log": Reads(
        ("ec2:DescribeFlowLogs",),
        "internal/service/ec2/vpc_flow_log.go: resourceLogFlowRead -> FindFlowLogByID -> FindFlowLogs",
        "verified 5.42",
    ),
    "aws_iam_instance_profile": Reads(
        ("iam:GetInstanceProfile", "iam:GetRole"),
        "internal/service/iam/instance_profile.go: resourceInstanceProfileRead -> findInstanceProfileByName",
        "verified 5.42; 6.x unverified",
    ),
    "aws_iam_openid_connect_provider": Reads(
        ("iam:GetOpenIDConnectProvider",),
        "internal/service/iam/openid_connect_provider.go: resourceOpenIDConnectProviderRead ->",
        "verified 5.42",
    ),
    "aws_iam_policy": Reads(
        ("iam:GetPolicy", "iam:GetPolicyVersion"),
        "internal/service/iam/policy.go: resourcePolicyRead -> findPolicyByARN",
        "verified 5.42",
    ),
    "aws_iam_role": Reads(
        ("iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies", "iam:ListRolePolicies"),
        "internal/service/iam/role.go: resourceRoleRead -> findRoleByName",
        "verified 5.42; 6.x unverified",
    ),
    "aws_iam_role_policy": Reads(
        ("iam:GetRolePolicy",),
        "internal/service/iam/role_policy.go: resourceRolePolicyRead -> FindRolePolicyByTwoPartKey",
        "verified 5.42",
    ),
    "aws_iam_role_policy_attachment": Reads(
        ("iam:ListAttachedRolePolicies",),
        "internal/service/iam/role_policy_attachment.go: resourceRolePolicyAttachmentRead ->",
        "verified 5.42",
    ),
    "aws_iam_service_linked_role": Reads(
        ("iam:GetRole",),
        "internal/service/iam/service_linked_role.go: resourceServiceLinkedRoleRead -> findRoleByName (GetRole)",
        "not in the research; the Read is a GetRole of the role name parsed from the id (unverified for 6.25)",
    ),
    "aws_internet_gateway": Reads(
        ("ec2:DescribeInternetGateways",),
        "internal/service/ec2/vpc_internet_gateway.go: resourceInternetGatewayRead -> FindInternetGateways",
        "verified 5.42",
    ),
    "aws_kms_alias": Reads(
        ("kms:ListAliases",),
        "internal/service/kms/alias.go: resourceAliasRead -> find.go FindAliasByName",
        "verified 5.42",
    ),
    "aws_kms_key": Reads(
        ("kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags"),
        "internal/service/kms/key.go: resourceKeyRead -> findKey",
        "verified 5.42; 6.x unverified (rotation_period_in_days comes from the same GetKeyRotationStatus)",
    ),
    "aws_lambda_function": Reads(
        (
            "lambda:GetFunction",
            "lambda:GetFunctionCodeSigningConfig",
            "lambda:ListTags",
            "lambda:ListVersionsByFunction",
        ),
        "internal/service/lambda/function.go: resourceFunctionRead -> findFunction",
        "verified 5.42 and a late-2024 stored version (SDK v2, names.StandardPartitionID); 6.25 unverified",
    ),
    "aws_lambda_invocation": Reads(
        (),
        "internal/service/lambda/invocation.go: resourceInvocationRead returns empty diagnostics",
        "verified 5.42; 6.x unverified",
    ),
    "aws_launch_template": Reads(
        ("ec2:DescribeLaunchTemplateVersions", "ec2:DescribeLaunchTemplates"),
        "internal/service/ec2/ec2_launch_template.go: resourceLaunchTemplateRead -> FindLaunchTemplateByID",
        "verified 5.42",
    ),
    "aws_lb": Reads(
        (
            "elasticloadbalancing:DescribeLoadBalancerAttributes",
            "elasticloadbalancing:DescribeLoadBalancers",
            "elasticloadbalancing:DescribeTags",
        ),
        "internal/service/elbv2/load_balancer.go: resourceLoadBalancerRead -> FindLoadBalancerByARN",
        "5.42 verified; capacity reservation from maintainer PRs",
    ),
    "aws_lb_listener": Reads(
        (
            "elasticloadbalancing:DescribeListenerAttributes",
            "elasticloadbalancing:DescribeListeners",
            "elasticloadbalancing:DescribeTags",
        ),
        "internal/service/elbv2/listener.go: resourceListenerRead -> findListenerByARN",
        "DescribeListenerAttributes read in a 2025 stored version (meta any, listenerAttributes.flatten); 6.25 unverified",
    ),
    "aws_lb_listener_rule": Reads(
        ("elasticloadbalancing:DescribeRules", "elasticloadbalancing:DescribeTags"),
        "internal/service/elbv2/listener_rule.go: resourceListenerRuleRead",
        "verified 5.42",
    ),
    "aws_lb_target_group": Reads(
        (
            "elasticloadbalancing:DescribeTags",
            "elasticloadbalancing:DescribeTargetGroupAttributes",
            "elasticloadbalancing:DescribeTargetGroups",
        ),
        "internal/service/elbv2/target_group.go: resourceTargetGroupRead -> FindTargetGroupByARN",
        "verified 5.42",
    ),
    "aws_nat_gateway": Reads(
        ("ec2:DescribeNatGateways",),
        "internal/service/ec2/vpc_nat_gateway.go: resourceNATGatewayRead -> FindNATGateways",
        "verified 5.42",
    ),
    "aws_route53_record": Reads(
        ("route53:GetHostedZone", "route53:ListResourceRecordSets"),
        "internal/service/route53/record.go: resourceRecordRead -> FindResourceRecordSetByFourPartKey ->",
        "verified 5.42",
    ),
    "aws_route_table": Reads(
        ("ec2:DescribeRouteTables",),
        "internal/service/ec2/vpc_route_table.go: resourceRouteTableRead -> FindRouteTables",
        "verified 5.42",
    ),
    "aws_route_table_association": Reads(
        ("ec2:DescribeRouteTables",),
        "internal/service/ec2/vpc_route_table_association.go: resourceRouteTableAssociationRead ->",
        "verified 5.42",
    ),
    "aws_s3_bucket": Reads(
        (
            "s3:GetAccelerateConfiguration",
            "s3:GetBucketAcl",
            "s3:GetBucketCORS",
            "s3:GetBucketLogging",
            "s3:GetBucketObjectLockConfiguration",
            "s3:GetBucketPolicy",
            "s3:GetBucketRequestPayment",
            "s3:GetBucketTagging",
            "s3:GetBucketVersioning",
            "s3:GetBucketWebsite",
            "s3:GetEncryptionConfiguration",
            "s3:GetLifecycleConfiguration",
            "s3:GetReplicationConfiguration",
            "s3:ListBucket",
        ),
        "internal/service/s3/bucket.go: resourceBucketRead -> findBucket",
        "verified 5.42; 6.x unverified (no issue found reporting a new bucket read permission)",
    ),
    "aws_s3_bucket_lifecycle_configuration": Reads(
        ("s3:GetLifecycleConfiguration",),
        "internal/service/s3/bucket_lifecycle_configuration.go: resourceBucketLifecycleConfigurationRead ->",
        "verified 5.42",
    ),
    "aws_s3_bucket_logging": Reads(
        ("s3:GetBucketLogging",),
        "internal/service/s3/bucket_logging.go: resourceBucketLoggingRead -> findLoggingEnabled",
        "verified 5.42",
    ),
    "aws_s3_bucket_ownership_controls": Reads(
        ("s3:GetBucketOwnershipControls",),
        "internal/service/s3/bucket_ownership_controls.go: resourceBucketOwnershipControlsRead ->",
        "verified 5.42",
    ),
    "aws_s3_bucket_policy": Reads(
        ("s3:GetBucketPolicy",),
        "internal/service/s3/bucket_policy.go: resourceBucketPolicyRead -> findBucketPolicy (GetBucketPolicy)",
        "verified 5.42",
    ),
    "aws_s3_bucket_public_access_block": Reads(
        ("s3:GetBucketPublicAccessBlock",),
        "internal/service/s3/bucket_public_access_block.go: resourceBucketPublicAccessBlockRead ->",
        "verified 5.42",
    ),
    "aws_s3_bucket_replication_configuration": Reads(
        ("s3:GetReplicationConfiguration",),
        "internal/service/s3/bucket_replication_configuration.go: resourceBucketReplicationConfigurationRead",
        "verified 5.42",
    ),
    "aws_s3_bucket_server_side_encryption_configuration": Reads(
        ("s3:GetEncryptionConfiguration",),
        "internal/service/s3/bucket_server_side_encryption_configuration.go:",
        "verified 5.42",
    ),
    "aws_s3_bucket_versioning": Reads(
        ("s3:GetBucketVersioning",),
        "internal/service/s3/bucket_versioning.go: resourceBucketVersioningRead ->",
        "verified 5.42",
    ),
    "aws_secretsmanager_secret": Reads(
        ("secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy"),
        "internal/service/secretsmanager/secret.go: resourceSecretRead -> findSecretByID",
        "verified 5.42",
    ),
    "aws_secretsmanager_secret_policy": Reads(
        ("secretsmanager:GetResourcePolicy",),
        "internal/service/secretsmanager/secret_policy.go: resourceSecretPolicyRead -> findSecretPolicyByID",
        "verified 5.42",
    ),
    "aws_security_group": Reads(
        ("ec2:DescribeSecurityGroups",),
        "internal/service/ec2/vpc_security_group.go: resourceSecurityGroupRead -> FindSecurityGroupByID ->",
        "verified 5.42",
    ),
    "aws_sns_topic": Reads(
        ("sns:GetTopicAttributes", "sns:ListTagsForResource"),
        "internal/service/sns/topic.go: resourceTopicRead -> findTopicAttributesWithValidAWSPrincipalsByARN",
        "verified 5.42",
    ),
    "aws_sns_topic_subscription": Reads(
        ("sns:GetSubscriptionAttributes",),
        "internal/service/sns/topic_subscription.go: resourceTopicSubscriptionRead ->",
        "verified 5.42",
    ),
    "aws_ssm_parameter": Reads(
        ("ssm:DescribeParameters", "ssm:GetParameter", "ssm:ListTagsForResource"),
        "internal/service/ssm/parameter.go: resourceParameterRead -> findParameterByName(ctx, conn, d.Id(),",
        "verified in 5.42 (SDK v1, GetParameterInput WithDecryption aws.Bool(true)) and a 2024 SDK v2 stored version (findParameterByName(..., true)); 6.25 unverified",
    ),
    "aws_subnet": Reads(
        ("ec2:DescribeSubnets",),
        "internal/service/ec2/vpc_subnet.go: resourceSubnetRead -> FindSubnets",
        "verified 5.42",
    ),
    "aws_vpc": Reads(
        (
            "ec2:DescribeNetworkAcls",
            "ec2:DescribeRouteTables",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeVpcAttribute",
            "ec2:DescribeVpcs",
        ),
        "internal/service/ec2/vpc_.go: resourceVPCRead -> findVPCByIDV2",
        "verified 5.42",
    ),
    "aws_vpc_endpoint": Reads(
        ("ec2:DescribePrefixLists", "ec2:DescribeVpcEndpoints"),
        "internal/service/ec2/vpc_endpoint.go: resourceVPCEndpointRead -> FindVPCEndpointByID",
        "verified 5.42",
    ),
    "aws_vpc_security_group_egress_rule": Reads(
        ("ec2:DescribeSecurityGroupRules",),
        "internal/service/ec2/vpc_security_group_egress_rule.go: same base Read as ingress rule",
        "verified 5.42",
    ),
    "aws_vpc_security_group_ingress_rule": Reads(
        ("ec2:DescribeSecurityGroupRules",),
        "internal/service/ec2/vpc_security_group_ingress_rule.go: resourceSecurityGroupRule.Read ->",
        "verified 5.42",
    ),
    "databricks_grants": Reads((), "databricks provider", "no AWS call"),
    "databricks_grant": Reads((), "databricks provider", "no AWS call"),
    "databricks_job": Reads((), "databricks provider", "no AWS call"),
    "databricks_mlflow_experiment": Reads((), "databricks provider", "no AWS call"),
    "databricks_permissions": Reads((), "databricks provider", "no AWS call"),
    "databricks_registered_model": Reads((), "databricks provider", "no AWS call"),
    "random_id": Reads((), "hashicorp/random provider", "n/a"),
    "data.aws_availability_zones": Reads(
        ("ec2:DescribeAvailabilityZones",),
        "internal/service/ec2/ec2_availability_zones_data_source.go: dataSourceAvailabilityZonesRead",
        "verified 5.42",
    ),
    "data.aws_caller_identity": Reads(
        (),
        "internal/service/sts/caller_identity_data_source.go",
        "verified 5.42; 6.x unchanged (no reason to differ)",
    ),
    "data.aws_elb_service_account": Reads(
        (),
        "internal/service/elb/service_account_data_source.go: dataSourceServiceAccountRead",
        "verified 5.42",
    ),
    "data.aws_iam_openid_connect_provider": Reads(
        ("iam:GetOpenIDConnectProvider",),
        "internal/service/iam/openid_connect_provider_data_source.go: dataSourceOpenIDConnectProviderRead",
        "verified 5.42; 6.x unverified",
    ),
    "data.aws_iam_role": Reads(
        ("iam:GetRole",),
        "internal/service/iam/role_data_source.go: dataSourceRoleRead -> role.go findRoleByName -> GetRole",
        "verified 5.42; 6.x unverified",
    ),
    "data.aws_partition": Reads(
        (), "internal/service/meta/partition_data_source.go: Read (endpoints metadata only)", "verified 5.42"
    ),
    "data.aws_region": Reads(
        (),
        "internal/service/meta/region_data_source.go: Read -> FindRegionByName/FindRegionByEndpoint over",
        "verified 5.42; 6.x unverified",
    ),
    "data.aws_route53_zone": Reads(
        (
            "route53:GetHostedZone",
            "route53:ListHostedZones",
            "route53:ListResourceRecordSets",
            "route53:ListTagsForResource",
        ),
        "internal/service/route53/zone_data_source.go: dataSourceZoneRead",
        "verified 5.42; 6.x unverified",
    ),
}

# Types the table covers before any shipped stack synthesizes them, each with the reason.
ANTICIPATED: dict[str, str] = {
    "aws_iam_service_linked_role": "mlflow.create_autoscaling_service_linked_role = true",
    "aws_secretsmanager_secret_policy": "traced with the rest; a secret policy is one attribute away",
    "aws_lb_listener_rule": "traced with the rest; issue 21's browser-path rules",
    "data.aws_availability_zones": "traced with the rest; zones are configured, not looked up",
    "data.aws_region": "traced with the rest; the region is configured",
}

# Services through which a refresh reads a value decrypted with a customer key (kms:Decrypt is
# granted through these services only, on the environment's keys). A test fails when a service is
# here although no synthesized resource needs it, or missing although one does.
# None today: the instance settings are String parameters (no secret in them; the provider still
# reads them WithDecryption=true, which a String ignores), and no secret version is managed by
# Terraform (the secrets' values are generated outside it: constructs_lib/secrets.py).
DECRYPTS: dict[str, str] = {}


def plan_actions() -> frozenset[str]:
    """Every action the table grants."""
    return frozenset(a for reads in READS.values() for a in reads.actions)
