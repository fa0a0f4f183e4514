"""RDS for MySQL 8.4 (an existing 8.0 database until its upgrade): MLflow's backend store. The
master password is generated, stored and rotated by RDS in Secrets Manager
(``manage_master_user_password``): it never passes through Terraform, tfvars or state, and only the
database-user function (``constructs_lib.db_users``) reads it. MLflow logs in as ``APP_USER`` with
IAM database authentication.

A major-version upgrade (docs/runbooks/mysql-major-upgrade.md) is one in-place update of
``aws_db_instance.mlflow``: the provider sends one ``ModifyDBInstance`` with ``EngineVersion``,
``AllowMajorVersionUpgrade`` and, when it changed, ``DBParameterGroupName``
(terraform-provider-aws ``internal/service/rds/instance.go``, ``resourceInstanceUpdate``). A DB
parameter group serves one major version (``family``, ForceNew), so the group is named after its
family and created before the old one is destroyed: the new group exists when the instance
switches to it, and the old one is deleted once no instance uses it."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import TerraformResourceLifecycle, Token
from cdktf_cdktf_provider_aws.db_instance import DbInstance
from cdktf_cdktf_provider_aws.db_parameter_group import DbParameterGroup, DbParameterGroupParameter
from cdktf_cdktf_provider_aws.db_subnet_group import DbSubnetGroup
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from cdktf_cdktf_provider_random.id import Id as RandomId
from constructs import Construct

from constructs_lib.network import assume_role_policy
from constructs_lib.observability import log_group
from constructs_lib.policy import skip_checks

DB_NAME = "mlflow"
# The sign-in database (MLflow's basic-auth app: users, permissions), on the same instance; created
# with the user's grants by the provisioning Lambda.
AUTH_DB_NAME = "mlflow_auth"
DB_USERNAME = "mlflow_admin"
# MLflow's own login: IAM database authentication, rights on DB_NAME only (constructs_lib.db_users).
APP_USER = "mlflow"
CA_CERT = "rds-ca-rsa2048-g1"
# The name of the stack's 8.0 parameter group before its family was part of the name: an existing
# 8.0 database keeps it (renaming it would replace the group under a live instance, for nothing,
# right before the upgrade replaces it anyway).
LEGACY_GROUP_FAMILY = "mysql8.0"


def parameter_group_name(identifier: str, family: str) -> str:
    """``<identifier>-mysql84``: one name per major version, so the upgrade's new group never
    collides with the old one (names allow letters, digits and hyphens only)."""
    if family == LEGACY_GROUP_FAMILY:
        return identifier
    return f"{identifier}-{family.replace('.', '')}"


@dataclass(frozen=True)
class DatabaseProps:
    identifier: str
    engine_version: str
    parameter_group_family: str
    engine_lifecycle_support: str
    allow_major_version_upgrade: bool
    instance_class: str
    allocated_storage_gb: int
    max_allocated_storage_gb: int
    multi_az: bool
    deletion_protection: bool
    backup_retention_days: int
    performance_insights: bool
    monitoring_interval: int
    log_exports: tuple[str, ...]
    subnet_ids: list[str]
    security_group_id: str
    kms_key_arn: str
    partition: str
    log_retention_days: int
    apply_immediately: bool
    # Roll back an MLflow upgrade: the instance re-created from this snapshot (snapshot_identifier
    # forces the replacement; aws provider, internal/service/rds/instance.go: Optional, Computed,
    # ForceNew, so leaving it set later plans nothing).
    restore_from_snapshot: str | None = None


class Database(Construct):
    """``aws_db_instance.mlflow`` with ``aws_db_subnet_group.database`` and
    ``aws_db_parameter_group.mlflow``."""

    def __init__(self, scope: Construct, construct_id: str, props: DatabaseProps) -> None:
        super().__init__(scope, construct_id)
        s = props
        identifier = s.identifier
        kms_key_arn = s.kms_key_arn
        subnets = DbSubnetGroup(
            self, "subnets", name=identifier, description="MLflow database subnets", subnet_ids=s.subnet_ids
        )
        subnets.override_logical_id("database")

        parameters = [
            # TLS only (1 = ON; checkov's CKV2_AWS_69 reads the numeric form). MLflow's URI asks for it.
            ("require_secure_transport", "1"),
            ("character_set_server", "utf8mb4"),
            # Binary collation: experiment, run and model names are case-sensitive in MLflow.
            ("collation_server", "utf8mb4_bin"),
            # Automated backups turn the binary log on, and then only SUPER, which RDS gives nobody,
            # may create a trigger unless this is set: MLflow's migrations create one (on `secrets`).
            ("log_bin_trust_function_creators", "1"),
        ]
        if "slowquery" in s.log_exports or "general" in s.log_exports:
            # RDS exports the logs from files; MySQL's default output (TABLE) leaves them empty.
            parameters.append(("log_output", "FILE"))
        if "slowquery" in s.log_exports:
            parameters += [("slow_query_log", "1"), ("long_query_time", "2")]
        if "general" in s.log_exports:
            parameters.append(("general_log", "1"))
        # Every parameter exists with the same meaning in MySQL 8.0 and 8.4 (none is among the 8.4.0
        # removals; docs/runbooks/mysql-major-upgrade.md, "The parameter group on 8.4").
        params = DbParameterGroup(
            self,
            "parameters",
            name=parameter_group_name(identifier, s.parameter_group_family),
            family=s.parameter_group_family,
            description="MLflow backend store: TLS only, utf8mb4",
            parameter=[DbParameterGroupParameter(name=k, value=v) for k, v in parameters],
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
        )
        params.override_logical_id("mlflow")

        # RDS would create these itself, unencrypted and kept forever.
        self.log_groups = [
            log_group(
                self,
                f"rds_{log}",
                name=f"/aws/rds/instance/{identifier}/{log}",
                kms_key_arn=kms_key_arn,
                retention_days=s.log_retention_days,
            )
            for log in s.log_exports
        ]

        monitoring_role_arn = None
        attachments: list[IamRolePolicyAttachment] = []
        if s.monitoring_interval:
            role = IamRole(
                self,
                "monitoring_role",
                name=f"{identifier}-rds-monitoring",
                assume_role_policy=assume_role_policy("monitoring.rds.amazonaws.com"),
            )
            role.override_logical_id("rds_monitoring")
            attachment = IamRolePolicyAttachment(
                self,
                "monitoring_policy",
                role=role.name,
                policy_arn=f"arn:{s.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole",
            )
            attachment.override_logical_id("rds_monitoring")
            # RDS checks the role's permissions when monitoring is switched on: attached first.
            attachments.append(attachment)
            monitoring_role_arn = role.arn

        # Unique per lifetime of the stack (kept in state, new after a destroy): a re-created
        # instance's final snapshot does not collide with the last one's, and no plan changes it.
        # A restore replaces the instance: its final snapshot then gets a suffix of its own.
        keepers = {"restore_from_snapshot": s.restore_from_snapshot} if s.restore_from_snapshot else None
        snapshot_suffix = RandomId(self, "final_snapshot_suffix", byte_length=4, keepers=keepers)
        snapshot_suffix.override_logical_id("final_snapshot_suffix")

        self._instance = DbInstance(
            self,
            "instance",
            identifier=identifier,
            engine="mysql",
            engine_version=s.engine_version,
            # Set explicitly: the API enrolls a new instance in paid Extended Support unless told
            # otherwise, and the choice is fixed for the instance's life (mlflow.database docs).
            engine_lifecycle_support=s.engine_lifecycle_support,
            # Sent only with an engine_version change (resourceInstanceUpdate); RDS refuses a major
            # change without it, before touching the instance.
            allow_major_version_upgrade=s.allow_major_version_upgrade,
            instance_class=s.instance_class,
            allocated_storage=s.allocated_storage_gb,
            max_allocated_storage=s.max_allocated_storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=kms_key_arn,
            db_name=DB_NAME,
            username=DB_USERNAME,
            manage_master_user_password=True,
            master_user_secret_kms_key_id=kms_key_arn,
            iam_database_authentication_enabled=True,
            db_subnet_group_name=subnets.name,
            parameter_group_name=params.name,
            vpc_security_group_ids=[s.security_group_id],
            publicly_accessible=False,
            multi_az=s.multi_az,
            deletion_protection=s.deletion_protection,
            backup_retention_period=s.backup_retention_days,
            backup_window="03:00-04:00",
            maintenance_window="sun:04:30-sun:05:30",
            snapshot_identifier=s.restore_from_snapshot,
            skip_final_snapshot=False,
            final_snapshot_identifier=f"{identifier}-final-{snapshot_suffix.hex}",
            copy_tags_to_snapshot=True,
            delete_automated_backups=False,
            auto_minor_version_upgrade=True,
            ca_cert_identifier=CA_CERT,
            enabled_cloudwatch_logs_exports=list(s.log_exports),
            performance_insights_enabled=s.performance_insights,
            performance_insights_kms_key_id=kms_key_arn if s.performance_insights else None,
            performance_insights_retention_period=7 if s.performance_insights else None,
            monitoring_interval=s.monitoring_interval,
            monitoring_role_arn=monitoring_role_arn,
            apply_immediately=s.apply_immediately,
            depends_on=[*self.log_groups, *attachments],
        )
        self._instance.override_logical_id("mlflow")
        why = "switched off by this non-production environment's mlflow.database settings (cost); production requires it"
        skips = {
            "CKV_AWS_157": not s.multi_az,
            "CKV_AWS_293": not s.deletion_protection,
            "CKV_AWS_118": s.monitoring_interval == 0,
            "CKV_AWS_129": not s.log_exports,
        }
        off = {check: why for check, is_off in skips.items() if is_off}
        if off:
            skip_checks(self._instance, off)

    @property
    def secret_arn(self) -> str:
        """The RDS-managed secret holding the master user's name and password (only the
        database-user function reads it)."""
        return self._instance.master_user_secret.get(0).secret_arn

    @property
    def resource_id(self) -> str:
        """The instance's DbiResourceId: what IAM database authentication's ARNs name, new when
        the instance is re-created."""
        return self._instance.resource_id

    @property
    def port_number(self) -> float:
        return self._instance.port

    @property
    def address(self) -> str:
        return self._instance.address

    @property
    def port(self) -> str:
        return Token.as_string(self._instance.port)

    @property
    def endpoint(self) -> str:
        """``host:port``."""
        return self._instance.endpoint

    @property
    def alarm_dimensions(self) -> dict[str, str]:
        return {"DBInstanceIdentifier": self._instance.identifier}
