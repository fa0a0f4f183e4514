"""``mlflow-<env>``: the MLflow tracking server and model registry on AWS.

Addresses follow the HCL deployment this stack replaces (``aws_vpc.main``, ``aws_db_instance.mlflow``,
...), so its state can be adopted without replacing anything. The stack only wires constructs
together through their handles; each construct owns its resources' settings.
"""

from __future__ import annotations

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.secretsmanager_secret import SecretsmanagerSecret
from cdktf_cdktf_provider_random.provider import RandomProvider
from constructs import Construct

from constructs_lib.account import Account, account_data
from constructs_lib.alarms import CacheMembers, MlflowAlarmsProps, mlflow_alarms
from constructs_lib.aws_provider import aws_provider
from constructs_lib.cache import Cache, CacheProps
from constructs_lib.certificate import DnsCertificate, DnsCertificateProps, alias_record
from constructs_lib.ci_boundary import bound_roles, workload_boundary_arn
from constructs_lib.compute import MlflowServers, MlflowServersProps
from constructs_lib.database import APP_USER, AUTH_DB_NAME, DB_NAME, Database, DatabaseProps
from constructs_lib.db_users import DatabaseUsers, DatabaseUsersProps
from constructs_lib.encryption import (
    CustomerKey,
    CustomerKeyProps,
    KeyUsers,
    autoscaling_service_role,
    service_statements,
)
from constructs_lib.instance_settings import InstanceSettingsProps, Setting, instance_settings
from constructs_lib.load_balancer import LoadBalancer, LoadBalancerProps
from constructs_lib.network import Network, NetworkProps
from constructs_lib.observability import Alerts, AlertsProps, log_group
from constructs_lib.secrets import GeneratedSecretProps, generated_secret
from constructs_lib.security import (
    NGINX_PORT,
    InstanceRole,
    InstanceRoleProps,
    SecurityGroups,
    SecurityGroupsProps,
)
from constructs_lib.storage import (
    ArtifactBucket,
    ArtifactBucketProps,
    LogBucket,
    LogBucketProps,
    bucket_suffix,
)
from constructs_lib.user_data import UserDataValues, encode, render
from platform_config.loader import Environment
from platform_config.mlflow_constraints import CONSTRAINTS
from stacks.base import PlatformStack

# Log group address -> its role in MlflowNames.log_groups. The instances write the last three.
LOG_GROUPS = {
    "vpc_flow_logs": "vpc_flow_logs",
    "mlflow_server": "server",
    "mlflow_nginx": "nginx",
    "mlflow_system": "system",
}
INSTANCE_LOG_GROUPS = ("mlflow_server", "mlflow_nginx", "mlflow_system")


class MlflowStack(PlatformStack):
    kind = "mlflow"

    def __init__(self, scope: Construct, env: Environment) -> None:
        super().__init__(scope, env)
        self.names = env.names.mlflow
        self.cfg = self.settings.mlflow
        self.region = self.settings.aws_region
        aws_provider(self, self.region, self.tags)
        RandomProvider(self, "random")
        account = account_data(self, "current", "current")

        key = self._key(account)
        logs = self._log_groups(key.arn)
        network = self._network(logs["vpc_flow_logs"].arn, account)
        groups = self._security_groups(network.vpc_id)
        endpoints = network.add_endpoints(self.region, groups.endpoints_id)
        log_bucket, artifacts = self._buckets(account.account_id, key.arn)
        database = self._database(network, groups, key.arn, account.partition)
        cache = self._cache(network, groups, key.arn)
        signin = self._signin_secrets(key.arn)
        db_users = self._database_users(
            account,
            database,
            network,
            groups,
            kms_key_arn=key.arn,
            generated=tuple(secret.arn for secret in signin.values()),
            cache=cache,
            # Its network path: the rules, the way out to the CA bundle, the Secrets Manager endpoint.
            depends_on=(*groups.db_users_rules, *network.private_egress, endpoints["secretsmanager"]),
        )
        alerts = Alerts(
            self,
            "alerts",
            AlertsProps(name=self.names.alerts_topic, kms_key_arn=key.arn, emails=self.cfg.alerts.emails),
        )
        alb = self._load_balancer(network, groups, log_bucket)
        settings = instance_settings(
            self,
            InstanceSettingsProps(
                self.names.parameter_path, _instance_settings(database, artifacts, alb, cache, signin)
            ),
        )
        secret_arns = (*(secret.arn for secret in signin.values()), *((cache.secret_arn,) if cache else ()))
        role = self._instance_role(
            account,
            artifacts.arn,
            logs,
            key.arn,
            secret_arns=secret_arns,
            db_resource_id=database.resource_id,
        )
        servers = self._servers(
            script=self._boot_script(settings.names, cache is not None),
            role=role,
            groups=groups,
            network=network,
            alb=alb,
            kms_key_arn=key.arn,
            topic_arn=alerts.topic_arn,
            # The instances log in as APP_USER at boot: it exists before the first one starts.
            depends_on=(*settings.parameters, *role.attachments, db_users.invocation),
        )
        alerts.add_alarms(mlflow_alarms(self._alarms_props(alb, database, cache)))
        self._outputs(
            alb=alb,
            artifacts=artifacts,
            database=database,
            cache=cache,
            logs=logs,
            alerts=alerts,
            network=network,
            servers=servers,
            key=key,
        )
        if self.settings.ci is not None:
            bound_roles(self, workload_boundary_arn(account, self.env.name))

    def _key(self, account: Account) -> CustomerKey:
        users = KeyUsers(
            account,
            self.region,
            autoscaling_service_role(self, self.cfg.create_autoscaling_service_linked_role),
        )
        return CustomerKey(
            self,
            "key",
            CustomerKeyProps(
                address="mlflow",
                alias=self.names.kms_alias,
                description=f"Encrypts the MLflow platform of environment {self.env.name}",
                account=account,
                extra_statements=tuple(service_statements(("logs", "cloudwatch", "autoscaling"), users)),
                protect=True,
            ),
        )

    def _log_groups(self, kms_key_arn: str) -> dict[str, CloudwatchLogGroup]:
        return {
            address: log_group(
                self,
                address,
                name=self.names.log_groups[role],
                kms_key_arn=kms_key_arn,
                retention_days=self.cfg.log_retention_days,
            )
            for address, role in LOG_GROUPS.items()
        }

    def _network(self, flow_log_group_arn: str, account: Account) -> Network:
        net = self.settings.network
        return Network(
            self,
            "network",
            NetworkProps(
                name=self.names.prefix,
                vpc_cidr=net.vpc_cidr,
                availability_zones=tuple(net.availability_zones),
                public_subnet_cidrs=tuple(net.public_subnet_cidrs),
                private_subnet_cidrs=tuple(net.private_subnet_cidrs),
                database_subnet_cidrs=tuple(net.database_subnet_cidrs),
                single_nat_gateway=net.single_nat_gateway,
                flow_log_group_arn=flow_log_group_arn,
                partition=account.partition,
                region=self.region,
                account_id=account.account_id,
            ),
        )

    def _security_groups(self, vpc_id: str) -> SecurityGroups:
        lb = self.cfg.load_balancer
        return SecurityGroups(
            self,
            "security_groups",
            SecurityGroupsProps(
                name=self.names.prefix,
                vpc_id=vpc_id,
                ingress_cidrs=tuple(lb.ingress_cidrs),
                cache=self.cfg.cache.enabled,
            ),
        )

    def _buckets(self, account_id: str, kms_key_arn: str) -> tuple[LogBucket, ArtifactBucket]:
        storage = self.cfg.storage
        suffix = bucket_suffix(self)
        log_bucket = LogBucket(
            self,
            "log_bucket",
            LogBucketProps(
                name=f"{self.names.prefix}-logs-{suffix.hex}",
                account_id=account_id,
                expiration_days=storage.log_expiration_days,
                abort_incomplete_days=storage.abort_incomplete_multipart_upload_days,
            ),
        )
        artifacts = ArtifactBucket(
            self,
            "artifacts",
            ArtifactBucketProps(
                name=f"{self.names.prefix}-artifacts-{suffix.hex}",
                kms_key_arn=kms_key_arn,
                log_bucket_id=log_bucket.id,
                noncurrent_days=storage.noncurrent_version_expiration_days,
                abort_incomplete_days=storage.abort_incomplete_multipart_upload_days,
                protect=self.settings.is_production,
            ),
        )
        return log_bucket, artifacts

    def _database(
        self, network: Network, groups: SecurityGroups, kms_key_arn: str, partition: str
    ) -> Database:
        db = self.cfg.database
        return Database(
            self,
            "database",
            DatabaseProps(
                identifier=self.names.prefix,
                engine_version=db.engine_version,
                parameter_group_family=db.parameter_group_family,
                engine_lifecycle_support=db.lifecycle_support,
                allow_major_version_upgrade=db.allow_major_version_upgrade,
                instance_class=db.instance_class,
                allocated_storage_gb=db.allocated_storage_gb,
                max_allocated_storage_gb=db.max_allocated_storage_gb,
                multi_az=db.multi_az,
                deletion_protection=db.deletion_protection,
                backup_retention_days=db.backup_retention_days,
                performance_insights=db.performance_insights,
                monitoring_interval=db.monitoring_interval,
                log_exports=tuple(db.log_exports),
                subnet_ids=network.database_subnet_ids,
                security_group_id=groups.database_id,
                kms_key_arn=kms_key_arn,
                partition=partition,
                log_retention_days=self.cfg.log_retention_days,
                # Production changes wait for the maintenance window unless the file says otherwise
                # (a major upgrade cannot wait: docs/runbooks/mysql-major-upgrade.md).
                apply_immediately=(
                    db.apply_immediately
                    if db.apply_immediately is not None
                    else not self.settings.is_production
                ),
                restore_from_snapshot=db.restore_from_snapshot,
            ),
        )

    def _signin_secrets(self, kms_key_arn: str) -> dict[str, SecretsmanagerSecret]:
        """MLflow's sign-in: the admin's password (applied by MLflow at its first start) and the
        Flask secret key every instance signs sessions with, both generated outside Terraform."""
        return {
            "admin_password": generated_secret(
                self,
                GeneratedSecretProps(
                    address="mlflow_admin_password",
                    name=self.names.admin_password_secret,
                    description=f"Password of the MLflow administrator {self.cfg.auth.admin_username!r}",
                    kms_key_arn=kms_key_arn,
                    rotation="rotated by `python -m ops mlflow admin rotate` through MLflow's own API (a new "
                    "value here alone would not change the password MLflow checks)",
                ),
            ),
            "flask_secret_key": generated_secret(
                self,
                GeneratedSecretProps(
                    address="mlflow_flask_secret_key",
                    name=self.names.flask_secret_key_secret,
                    description="Flask secret key of the MLflow servers (the same on every instance)",
                    kms_key_arn=kms_key_arn,
                    rotation="rotated by putting a new random value into the secret, which every instance "
                    "reads at its next start (an instance refresh); it only ends open browser sessions "
                    "(docs/stacks/mlflow.md, Secrets)",
                ),
            ),
        }

    def _database_users(
        self,
        account: Account,
        database: Database,
        network: Network,
        groups: SecurityGroups,
        *,
        kms_key_arn: str,
        generated: tuple[str, ...],
        cache: Cache | None,
        depends_on: tuple[ITerraformDependable, ...],
    ) -> DatabaseUsers:
        return DatabaseUsers(
            self,
            "db_users",
            DatabaseUsersProps(
                name=self.names.prefix,
                partition=account.partition,
                region=self.region,
                account_id=account.account_id,
                master_secret_arn=database.secret_arn,
                kms_key_arn=kms_key_arn,
                db_host=database.address,
                db_port=database.port_number,
                db_names=(DB_NAME, AUTH_DB_NAME),
                db_user=APP_USER,
                db_resource_id=database.resource_id,
                subnet_ids=network.private_subnet_ids,
                security_group_id=groups.db_users_id,
                log_retention_days=self.cfg.log_retention_days,
                generated_secret_arns=generated,
                redis=(cache.group_id, cache.group_arn, cache.secret_arn) if cache else None,
                depends_on=depends_on,
            ),
        )

    def _cache(self, network: Network, groups: SecurityGroups, kms_key_arn: str) -> Cache | None:
        cache = self.cfg.cache
        if groups.cache_id is None:
            return None
        return Cache(
            self,
            "cache",
            CacheProps(
                name=self.names.prefix,
                engine_version=cache.engine_version,
                node_type=cache.node_type,
                num_nodes=cache.num_nodes,
                snapshot_retention_days=cache.snapshot_retention_days,
                subnet_ids=network.database_subnet_ids,
                security_group_id=groups.cache_id,
                kms_key_arn=kms_key_arn,
                log_group_name=self.names.log_groups["redis_slow_log"],
                log_retention_days=self.cfg.log_retention_days,
            ),
        )

    def _load_balancer(self, network: Network, groups: SecurityGroups, log_bucket: LogBucket) -> LoadBalancer:
        lb = self.cfg.load_balancer
        certificate = None
        if lb.hosted_zone_id is not None and lb.host_name is not None:
            certificate = DnsCertificate(
                self,
                "certificate",
                DnsCertificateProps(hosted_zone_id=lb.hosted_zone_id, host_name=lb.host_name),
            )
        if lb.certificate_arn is None and certificate is None:  # refused at load (rules.mlflow_https)
            raise ValueError("mlflow.load_balancer: neither certificate_arn nor hosted_zone_id")
        alb = LoadBalancer(
            self,
            "load_balancer",
            LoadBalancerProps(
                name=self.names.prefix,
                certificate_arn=certificate.certificate_arn if certificate else str(lb.certificate_arn),
                ssl_policy=lb.ssl_policy,
                deletion_protection=lb.deletion_protection,
                idle_timeout_seconds=lb.idle_timeout_seconds,
                subnet_ids=network.public_subnet_ids,
                security_group_id=groups.alb_id,
                vpc_id=network.vpc_id,
                target_port=NGINX_PORT,
                log_bucket_name=log_bucket.name,
                depends_on=(log_bucket.delivery_policy,),
            ),
        )
        if certificate is not None and lb.host_name is not None:
            alias_record(self, certificate.zone_id, lb.host_name, alb.dns_name, alb.zone_id)
        return alb

    def _instance_role(
        self,
        account: Account,
        bucket_arn: str,
        logs: dict[str, CloudwatchLogGroup],
        kms_key_arn: str,
        *,
        secret_arns: tuple[str, ...],
        db_resource_id: str,
    ) -> InstanceRole:
        return InstanceRole(
            self,
            "instance_role",
            InstanceRoleProps(
                name=self.names.prefix,
                partition=account.partition,
                region=self.region,
                account_id=account.account_id,
                bucket_arn=bucket_arn,
                parameter_path=self.names.parameter_path,
                log_group_arns=tuple(logs[g].arn for g in INSTANCE_LOG_GROUPS),
                kms_key_arn=kms_key_arn,
                secret_arns=secret_arns,
                db_resource_id=db_resource_id,
                db_user=APP_USER,
                metrics_namespace=self.names.metrics_namespace,
                autoscaling_group_name=self.names.prefix,  # MlflowServersProps.name
            ),
        )

    def _servers(
        self,
        *,
        script: str,
        role: InstanceRole,
        groups: SecurityGroups,
        network: Network,
        alb: LoadBalancer,
        kms_key_arn: str,
        topic_arn: str,
        depends_on: tuple[ITerraformDependable, ...],
    ) -> MlflowServers:
        server = self.cfg.server
        if server.ami_id is None:  # refused at load (platform_config.rules.mlflow_ami_pinned)
            raise ValueError("mlflow.server.ami_id is not set")
        return MlflowServers(
            self,
            "servers",
            MlflowServersProps(
                name=self.names.prefix,
                ami_id=server.ami_id,
                instance_type=server.instance_type,
                root_volume_size_gb=server.root_volume_size_gb,
                min_size=server.min_size,
                max_size=server.max_size,
                desired_capacity=server.desired_capacity,
                cpu_target_percent=server.cpu_target_percent,
                user_data_base64=encode(script),
                instance_profile_arn=role.profile_arn,
                security_group_id=groups.app_id,
                subnet_ids=network.private_subnet_ids,
                target_group_arn=alb.target_group_arn,
                kms_key_arn=kms_key_arn,
                sns_topic_arn=topic_arn,
                tags={**self.tags, "Name": self.names.prefix},
                depends_on=depends_on,
            ),
        )

    def _boot_script(self, parameters: tuple[str, ...], cache_enabled: bool) -> str:
        logs = self.names.log_groups
        return render(
            UserDataValues(
                region=self.region,
                environment=self.env.name,
                parameter_path=self.names.parameter_path,
                mlflow_version=self.cfg.mlflow_version,
                constraints=CONSTRAINTS,
                workers=self.cfg.server.workers,
                extra_allowed_hosts=",".join(self.names.public_hosts),
                cache_enabled=cache_enabled,
                log_group_server=logs["server"],
                log_group_nginx=logs["nginx"],
                log_group_system=logs["system"],
                metrics_namespace=self.names.metrics_namespace,
                nginx_port=NGINX_PORT,
                admin_username=self.cfg.auth.admin_username,
                default_permission=self.cfg.auth.default_permission,
                autoscaling_group=self.names.prefix,
                parameters=parameters,
            )
        )

    def _alarms_props(self, alb: LoadBalancer, database: Database, cache: Cache | None) -> MlflowAlarmsProps:
        a = self.cfg.alerts
        return MlflowAlarmsProps(
            prefix=self.names.prefix,
            http_5xx_rate_percent=a.http_5xx_rate_percent,
            db_cpu_percent=a.db_cpu_percent,
            db_free_storage_gb=a.db_free_storage_gb,
            cache_memory_percent=a.cache_memory_percent,
            target_dimensions=alb.target_dimensions,
            load_balancer_dimensions=alb.load_balancer_dimensions,
            database_dimensions=database.alarm_dimensions,
            cache=CacheMembers(cache.num_nodes, cache.member_dimensions) if cache else None,
        )

    def _outputs(
        self,
        *,
        alb: LoadBalancer,
        artifacts: ArtifactBucket,
        database: Database,
        cache: Cache | None,
        logs: dict[str, CloudwatchLogGroup],
        alerts: Alerts,
        network: Network,
        servers: MlflowServers,
        key: CustomerKey,
    ) -> None:
        self.output(
            "mlflow_url",
            self.names.url,
            "URL of the MLflow tracking server and model registry (sign in as a user MLflow knows)",
        )
        self.output("alb_dns_name", alb.dns_name, "DNS name of the MLflow load balancer (point a CNAME here)")
        self.output("artifact_bucket_name", artifacts.name, "S3 bucket holding MLflow artifacts")
        self.output(
            "db_instance_endpoint", database.endpoint, "Endpoint (host:port) of the MLflow RDS MySQL instance"
        )
        self.output(
            "db_master_user_secret_arn",
            database.secret_arn,
            "Secrets Manager secret (managed by RDS) with the DB master credentials; "
            "only the database-user function reads it",
        )
        if cache is not None:
            self.output(
                "redis_primary_endpoint_address",
                cache.endpoint,
                "Primary endpoint of the MLflow Redis replication group",
            )
        self.output(
            "log_group_names",
            [logs[g].name for g in (*INSTANCE_LOG_GROUPS, "vpc_flow_logs")],
            "CloudWatch log groups: MLflow server, nginx, system (cloud-init), VPC flow logs",
        )
        self.output(
            "sns_topic_arn", alerts.topic_arn, "SNS topic receiving alarms and auto scaling notifications"
        )
        self.output("vpc_id", network.vpc_id, "ID of the MLflow VPC")
        self.output(
            "autoscaling_group_name", servers.group_name, "Auto scaling group of the MLflow instances"
        )
        self.output("kms_key_arn", key.arn, "KMS key encrypting the MLflow platform's data")


def _instance_settings(
    database: Database,
    artifacts: ArtifactBucket,
    alb: LoadBalancer,
    cache: Cache | None,
    signin: dict[str, SecretsmanagerSecret],
) -> tuple[Setting, ...]:
    """What the instances read at every start (names: see user_data.LAUNCHER_SETTINGS)."""
    settings = [
        Setting("db_host", database.address),
        Setting("db_port", database.port),
        Setting("db_name", DB_NAME),
        Setting("db_auth_name", AUTH_DB_NAME),
        Setting("db_user", APP_USER),
        Setting("artifacts_destination", artifacts.artifacts_uri),
        Setting("alb_dns_name", alb.dns_name),
        Setting("admin_password_secret_arn", signin["admin_password"].arn),
        Setting("flask_secret_key_secret_arn", signin["flask_secret_key"].arn),
    ]
    if cache is not None:
        settings += [
            Setting("redis_host", cache.endpoint),
            Setting("redis_port", str(cache.port)),
            Setting("redis_auth_secret_arn", cache.secret_arn),
        ]
    return tuple(settings)
