"""``mlflow-<env>``: the MLflow tracking server and model registry on AWS.

Addresses follow the HCL deployment this stack replaces (``aws_vpc.main``, ``aws_db_instance.mlflow``,
...), so its state can be adopted without replacing anything.
"""

from __future__ import annotations

from typing import Any

from cdktf import TerraformCount, Token
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarmMetricQuery
from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter
from cdktf_cdktf_provider_random.provider import RandomProvider
from constructs import Construct

from constructs_lib.aws_provider import aws_provider
from constructs_lib.cache import REDIS_PORT, Cache
from constructs_lib.compute import MlflowServers
from constructs_lib.database import DB_NAME, Database
from constructs_lib.encryption import CustomerKey
from constructs_lib.load_balancer import LoadBalancer
from constructs_lib.network import Network
from constructs_lib.observability import Alerts, log_group
from constructs_lib.security import NGINX_PORT, InstanceRole, InstanceScope, SecurityGroups
from constructs_lib.storage import ArtifactBucket, LogBucket, bucket_suffix
from constructs_lib.user_data import UserDataValues, encode, render
from platform_config import naming
from platform_config.loader import Environment
from stacks.base import PlatformStack

GIB = 1024**3


class MlflowStack(PlatformStack):
    kind = "mlflow"

    def __init__(self, scope: Construct, env: Environment) -> None:
        super().__init__(scope, env)
        name = env.name
        cfg = self.settings.mlflow
        region = self.settings.aws_region
        prefix = naming.mlflow_name(name)
        aws_provider(self, region, self.tags)
        RandomProvider(self, "random")

        caller = DataAwsCallerIdentity(self, "caller")
        caller.override_logical_id("current")
        part = DataAwsPartition(self, "partition")
        part.override_logical_id("current")
        account, partition = caller.account_id, part.partition

        key = CustomerKey(
            self,
            "key",
            address="mlflow",
            alias=f"alias/{prefix}",
            description=f"Encrypts the MLflow platform of environment {name}",
            extra_statements=_key_statements(partition, region, account),
        )
        retention = cfg.log_retention_days

        def logs(address: str, part_name: str) -> CloudwatchLogGroup:
            return log_group(
                self,
                address,
                name=naming.mlflow_log_group(name, part_name),
                kms_key_arn=key.arn,
                retention_days=retention,
            )

        flow_logs = logs("vpc_flow_logs", "vpc-flow-logs")
        server_logs = logs("mlflow_server", "server")
        nginx_logs = logs("mlflow_nginx", "nginx")
        system_logs = logs("mlflow_system", "system")

        network = Network(
            self, "network", name=prefix, settings=self.settings.network, flow_log_group=flow_logs
        )
        https = cfg.load_balancer.certificate_arn is not None
        groups = SecurityGroups(
            self,
            "security_groups",
            name=prefix,
            vpc_id=network.vpc.id,
            ingress_cidrs=cfg.load_balancer.ingress_cidrs,
            https=https,
            cache=cfg.cache.enabled,
        )
        network.add_endpoints(region, groups.endpoints.id)

        suffix = bucket_suffix(self)
        log_bucket = LogBucket(
            self,
            "log_bucket",
            name=f"{prefix}-logs-{suffix.hex}",
            account_id=account,
            expiration_days=cfg.storage.log_expiration_days,
            abort_incomplete_days=cfg.storage.abort_incomplete_multipart_upload_days,
        )
        artifacts = ArtifactBucket(
            self,
            "artifacts",
            name=f"{prefix}-artifacts-{suffix.hex}",
            kms_key_arn=key.arn,
            log_bucket=log_bucket.bucket,
            noncurrent_days=cfg.storage.noncurrent_version_expiration_days,
            abort_incomplete_days=cfg.storage.abort_incomplete_multipart_upload_days,
            protect=self.settings.is_production,
        )

        database = Database(
            self,
            "database",
            identifier=prefix,
            settings=cfg.database,
            subnet_ids=network.database_subnet_ids,
            security_group_id=groups.database.id,
            kms_key_arn=key.arn,
            partition=partition,
            log_retention_days=retention,
            is_production=self.settings.is_production,
        )
        cache = None
        if cfg.cache.enabled and groups.cache is not None:
            cache = Cache(
                self,
                "cache",
                name=prefix,
                settings=cfg.cache,
                subnet_ids=network.database_subnet_ids,
                security_group_id=groups.cache.id,
                kms_key_arn=key.arn,
                log_group_name=naming.mlflow_log_group(name, "redis-slow-log"),
                log_retention_days=retention,
            )

        alerts = Alerts(
            self, "alerts", name=f"{prefix}-alerts", kms_key_arn=key.arn, emails=cfg.alerts.emails
        )
        alb = LoadBalancer(
            self,
            "load_balancer",
            name=prefix,
            settings=cfg.load_balancer,
            subnet_ids=network.public_subnet_ids,
            security_group_id=groups.alb.id,
            vpc_id=network.vpc.id,
            target_port=NGINX_PORT,
            log_bucket=log_bucket.bucket.bucket,
        )

        parameter_path = naming.mlflow_parameter_path(name)
        values: dict[str, str] = {
            "db_host": database.instance.address,
            "db_port": Token.as_string(database.instance.port),
            "db_name": DB_NAME,
            "db_secret_arn": database.secret_arn,
            "artifacts_destination": artifacts.artifacts_uri,
            "alb_dns_name": alb.lb.dns_name,
        }
        secret_arns = [database.secret_arn]
        if cache is not None:
            values |= {
                "redis_host": cache.endpoint,
                "redis_port": str(REDIS_PORT),
                "redis_auth_secret_arn": cache.secret.arn,
            }
            secret_arns.append(cache.secret.arn)
        parameters = []
        for param_name, value in values.items():
            param = SsmParameter(
                self,
                f"param_{param_name}",
                name=f"{parameter_path}/{param_name}",
                type="SecureString",
                key_id=key.arn,
                value=value,
                description=f"MLflow setting {param_name}, read by the instances at start",
            )
            param.override_logical_id(param_name)
            parameters.append(param)

        metrics_namespace = f"{prefix}/instances"
        log_groups = [server_logs, nginx_logs, system_logs]
        role = InstanceRole(
            self,
            "instance_role",
            name=prefix,
            scope_of=InstanceScope(
                partition=partition,
                region=region,
                account_id=account,
                bucket_arn=artifacts.bucket.arn,
                parameter_path=parameter_path,
                log_group_arns=[g.arn for g in log_groups],
                kms_key_arn=key.arn,
                secret_arns=secret_arns,
                metrics_namespace=metrics_namespace,
            ),
        )
        script = render(
            UserDataValues(
                region=region,
                environment=name,
                parameter_path=parameter_path,
                mlflow_version=cfg.mlflow_version,
                workers=cfg.server.workers,
                extra_allowed_hosts=",".join(cfg.server.allowed_hosts),
                cache_enabled=cache is not None,
                log_group_server=naming.mlflow_log_group(name, "server"),
                log_group_nginx=naming.mlflow_log_group(name, "nginx"),
                log_group_system=naming.mlflow_log_group(name, "system"),
                metrics_namespace=metrics_namespace,
                nginx_port=NGINX_PORT,
            )
        )
        servers = MlflowServers(
            self,
            "servers",
            name=prefix,
            settings=cfg.server,
            user_data_base64=encode(script),
            instance_profile_arn=role.profile.arn,
            security_group_id=groups.app.id,
            subnet_ids=network.private_subnet_ids,
            target_group_arn=alb.target_group.arn,
            kms_key_arn=key.arn,
            sns_topic_arn=alerts.topic.arn,
            tags={**self.tags, "Name": prefix},
            depends_on=[*parameters, *role.policies.values()],
        )

        a = cfg.alerts
        lb_dims = {"LoadBalancer": alb.lb.arn_suffix, "TargetGroup": alb.target_group.arn_suffix}
        alerts.alarm(
            "alb_unhealthy_hosts",
            description="MLflow: at least one instance fails the /health check",
            alarm_name=f"{prefix}-unhealthy-hosts",
            namespace="AWS/ApplicationELB",
            metric_name="UnHealthyHostCount",
            dimensions=lb_dims,
            statistic="Maximum",
            period=60,
            evaluation_periods=5,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
        )
        alerts.alarm(
            "alb_no_healthy_hosts",
            description="MLflow is down: no instance passes the /health check",
            alarm_name=f"{prefix}-no-healthy-hosts",
            namespace="AWS/ApplicationELB",
            metric_name="HealthyHostCount",
            dimensions=lb_dims,
            statistic="Minimum",
            period=60,
            evaluation_periods=3,
            threshold=1,
            comparison_operator="LessThanThreshold",
            treat_missing_data="breaching",
        )
        alerts.alarm(
            "alb_5xx_rate",
            description=f"MLflow: more than {a.http_5xx_rate_percent}% of requests answered with 5xx",
            alarm_name=f"{prefix}-5xx-rate",
            evaluation_periods=3,
            threshold=a.http_5xx_rate_percent,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            metric_query=[
                _metric("target_5xx", "HTTPCode_Target_5XX_Count", {"LoadBalancer": alb.lb.arn_suffix}),
                _metric("elb_5xx", "HTTPCode_ELB_5XX_Count", {"LoadBalancer": alb.lb.arn_suffix}),
                _metric("requests", "RequestCount", {"LoadBalancer": alb.lb.arn_suffix}),
                CloudwatchMetricAlarmMetricQuery(
                    id="rate",
                    expression="100 * (FILL(target_5xx, 0) + FILL(elb_5xx, 0)) / requests",
                    label="5xx responses (% of requests)",
                    return_data=True,
                ),
            ],
        )
        db_dims = {"DBInstanceIdentifier": database.instance.identifier}
        alerts.alarm(
            "rds_cpu",
            description=f"MLflow database CPU above {a.db_cpu_percent}%",
            alarm_name=f"{prefix}-db-cpu",
            namespace="AWS/RDS",
            metric_name="CPUUtilization",
            dimensions=db_dims,
            statistic="Average",
            period=300,
            evaluation_periods=3,
            threshold=a.db_cpu_percent,
            comparison_operator="GreaterThanThreshold",
        )
        alerts.alarm(
            "rds_free_storage",
            description=f"MLflow database has less than {a.db_free_storage_gb} GiB free storage",
            alarm_name=f"{prefix}-db-free-storage",
            namespace="AWS/RDS",
            metric_name="FreeStorageSpace",
            dimensions=db_dims,
            statistic="Minimum",
            period=300,
            evaluation_periods=1,
            threshold=a.db_free_storage_gb * GIB,
            comparison_operator="LessThanThreshold",
        )
        if cache is not None:
            count = TerraformCount.of(cache.num_nodes)
            alerts.alarm(
                "redis_memory",
                description=f"MLflow Redis node above {a.cache_memory_percent}% memory",
                count=count,
                alarm_name=f"{prefix}-redis-memory-${{count.index + 1}}",
                namespace="AWS/ElastiCache",
                metric_name="DatabaseMemoryUsagePercentage",
                # Members of a replication group are named <group id>-001, -002, ...
                dimensions={
                    "CacheClusterId": '${format("%s-%03d", aws_elasticache_replication_group.mlflow.id, count.index + 1)}'
                },
                statistic="Maximum",
                period=300,
                evaluation_periods=2,
                threshold=a.cache_memory_percent,
                comparison_operator="GreaterThanThreshold",
            )

        self.output("mlflow_url", alb.url, "URL of the MLflow tracking server and model registry")
        self.output(
            "alb_dns_name", alb.lb.dns_name, "DNS name of the MLflow load balancer (point a CNAME here)"
        )
        self.output("artifact_bucket_name", artifacts.bucket.bucket, "S3 bucket holding MLflow artifacts")
        self.output(
            "db_instance_endpoint",
            database.instance.endpoint,
            "Endpoint (host:port) of the MLflow RDS MySQL instance",
        )
        self.output(
            "db_master_user_secret_arn",
            database.secret_arn,
            "Secrets Manager secret (managed by RDS) with the DB credentials",
        )
        if cache is not None:
            self.output(
                "redis_primary_endpoint_address",
                cache.endpoint,
                "Primary endpoint of the MLflow Redis replication group",
            )
        self.output(
            "log_group_names",
            [g.name for g in (server_logs, nginx_logs, system_logs, flow_logs)],
            "CloudWatch log groups: MLflow server, nginx, system (cloud-init), VPC flow logs",
        )
        self.output(
            "sns_topic_arn", alerts.topic.arn, "SNS topic receiving alarms and auto scaling notifications"
        )
        self.output("vpc_id", network.vpc.id, "ID of the MLflow VPC")
        self.output(
            "autoscaling_group_name", servers.group.name, "Auto scaling group of the MLflow instances"
        )
        self.output("kms_key_arn", key.arn, "KMS key encrypting the MLflow platform's data")


def _metric(query_id: str, metric: str, dimensions: dict[str, str]) -> CloudwatchMetricAlarmMetricQuery:
    return CloudwatchMetricAlarmMetricQuery(
        id=query_id,
        return_data=False,
        metric={
            "namespace": "AWS/ApplicationELB",
            "metric_name": metric,
            "dimensions": dimensions,
            "period": 300,
            "stat": "Sum",
        },
    )


def _key_statements(partition: str, region: str, account: str) -> list[dict[str, Any]]:
    """Services that encrypt with the key on their own behalf (everything else goes through IAM)."""
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
            "Condition": {
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": f"arn:{partition}:logs:{region}:{account}:log-group:*"
                }
            },
        },
        {
            "Sid": "CloudWatchAlarmsPublishToEncryptedTopic",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
        },
        {
            # Launches instances with encrypted root volumes and publishes its notifications.
            # The role exists once any auto scaling group was created in the account (see README).
            "Sid": "AutoScalingUsesKeyForVolumesAndNotifications",
            "Effect": "Allow",
            "Principal": {
                "AWS": f"arn:{partition}:iam::{account}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
            },
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
            "Principal": {
                "AWS": f"arn:{partition}:iam::{account}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
            },
            "Action": "kms:CreateGrant",
            "Resource": "*",
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
    ]
