"""The ``mlflow = { ... }`` block of an environment's tfvars (MLflow platform stack).

Every key has a default suited to a small non-production environment; production environments
must opt in to the settings ``platform_config.rules.PRODUCTION`` lists (multi-AZ, deletion
protection, ...).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from platform_config.mlflow_constraints import MLFLOW_VERSION
from platform_config.sizing import INSTANCE_MEMORY_MIB
from platform_config.types import Bool, Cidr, Frozen, Int, Kind, Str

# Values CloudWatch Logs accepts for retention_in_days.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)  # fmt: skip

# RDS for MySQL does not offer Performance Insights on these classes.
NO_PERFORMANCE_INSIGHTS = ("db.t2.micro", "db.t2.small", "db.t3.micro", "db.t3.small", "db.t4g.micro",
                           "db.t4g.small")  # fmt: skip

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_HOSTNAME = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,}$")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _hostname(value: str) -> str:
    if not _HOSTNAME.match(value):
        raise ValueError(f"{value!r} is not a DNS name (e.g. mlflow.example.com or *.example.com)")
    return value


def _instance_type(value: str) -> str:
    if value not in INSTANCE_MEMORY_MIB:
        families = sorted({name.split(".")[0] for name in INSTANCE_MEMORY_MIB})
        raise ValueError(
            f"{value!r} is not in the instance memory table (platform_config/sizing.py; x86_64 "
            f"families {', '.join(families)}): the workers are sized from the instance's memory, "
            "so add the type there with its memory"
        )
    return value


# RDS for MySQL major versions: the one new databases use, and the ones an existing database may
# still be on until its in-place upgrade (docs/runbooks/mysql-major-upgrade.md).
MYSQL_MAJOR = "8.4"
MYSQL_UPGRADE_SOURCES = ("8.0",)
MYSQL_UPGRADE_RUNBOOK = "docs/runbooks/mysql-major-upgrade.md"
_MYSQL_VERSION = re.compile(r"^(\d+\.\d+)(\.\d+)?$")
EXTENDED_SUPPORT = "open-source-rds-extended-support"
NO_EXTENDED_SUPPORT = "open-source-rds-extended-support-disabled"


def mysql_major(version: str) -> str:
    """``8.4`` of ``8.4``, ``8.4.5``."""
    return ".".join(version.split(".")[:2])


def _mysql_version(value: str) -> str:
    match = _MYSQL_VERSION.match(value)
    if match and match.group(1) in (MYSQL_MAJOR, *MYSQL_UPGRADE_SOURCES):
        return value
    sources = ", ".join(f"{v} or {v}.x" for v in MYSQL_UPGRADE_SOURCES)
    raise ValueError(
        f"{value!r} is not a supported MySQL version: {MYSQL_MAJOR} or {MYSQL_MAJOR}.x (e.g. "
        f"{MYSQL_MAJOR}.5); {sources} only for an existing database until its upgrade "
        f"({MYSQL_UPGRADE_RUNBOOK})"
    )


def _retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(
            f"{value} is not a CloudWatch retention period ({', '.join(map(str, LOG_RETENTION_DAYS))})"
        )
    return value


Email = Annotated[Str, AfterValidator(_email), Kind("e-mail address")]
Hostname = Annotated[Str, AfterValidator(_hostname), Kind("DNS name")]
InstanceType = Annotated[Str, AfterValidator(_instance_type), Kind("EC2 instance type")]
RetentionDays = Annotated[Int, AfterValidator(_retention), Kind("CloudWatch retention days")]
MysqlVersion = Annotated[
    Str,
    AfterValidator(_mysql_version),
    Kind("MySQL version: 8.4 or 8.4.x; 8.0 or 8.0.x as an upgrade source"),
]


class ServerSettings(Frozen):
    """The EC2 instances running MLflow behind nginx, and their auto scaling group."""

    instance_type: InstanceType = Field(
        default="t3.medium",
        description="EC2 instance type: an x86_64 type listed in `platform_config/sizing.py`; its "
        "memory bounds `workers` (docs/stacks/mlflow.md, Sizing the instances).",
    )
    # Pinned, not "latest" from SSM: a new AMI changes the launch template, which starts an
    # instance refresh; that should be a reviewed change (docs/stacks/mlflow.md, "Bumping the AMI").
    ami_id: Str | None = Field(
        default=None,
        pattern=r"^ami-[0-9a-f]{8}([0-9a-f]{9})?$",
        description="Amazon Linux 2023 AMI of the instances, in `aws_region`; required (see "
        "docs/stacks/mlflow.md for the bump procedure).",
    )
    root_volume_size_gb: Int = Field(
        default=30, ge=20, le=1000, description="Size of the encrypted gp3 root volume."
    )
    min_size: Int = Field(
        default=1, ge=1, le=20, description="Auto scaling group minimum (min <= desired <= max)."
    )
    max_size: Int = Field(
        default=2, ge=1, le=20, description="Auto scaling group maximum (min <= desired <= max)."
    )
    desired_capacity: Int = Field(
        default=1, ge=1, le=20, description="Auto scaling group desired size (min <= desired <= max)."
    )
    cpu_target_percent: Int = Field(
        default=60, ge=10, le=90, description="Target-tracking scaling on average CPU."
    )
    workers: Int = Field(
        default=4,
        ge=1,
        le=64,
        description="MLflow server worker processes per instance; MLflow's estimated memory at rest must "
        "leave half of `instance_type`'s memory free.",
    )
    allowed_hosts: tuple[Hostname, ...] = Field(
        default=(),
        description="Custom DNS names pointing at the load balancer: MLflow accepts them as Host and "
        "their https origins as CORS origins (`load_balancer.host_name` is added by itself); with "
        "`load_balancer.certificate_arn`, at least one, covered by the certificate.",
    )

    @model_validator(mode="after")
    def _sizes(self) -> ServerSettings:
        if not self.min_size <= self.desired_capacity <= self.max_size:
            raise ValueError(
                f"needs min_size <= desired_capacity <= max_size (got {self.min_size}, "
                f"{self.desired_capacity}, {self.max_size})"
            )
        return self


class DatabaseSettings(Frozen):
    """RDS for MySQL 8.4, MLflow's backend store (an existing 8.0 database until its upgrade:
    docs/runbooks/mysql-major-upgrade.md)."""

    instance_class: Str = Field(
        default="db.t3.micro", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$", description="RDS instance class."
    )
    engine_version: MysqlVersion = Field(
        default=MYSQL_MAJOR,
        description="MySQL major version (minor upgrades are automatic) or an exact minor. New databases: "
        "8.4. 8.0 only for an existing database, which load warns about until it is upgraded with "
        "`python -m ops db upgrade-engine` (docs/runbooks/mysql-major-upgrade.md).",
    )
    engine_lifecycle_support: (
        Literal["open-source-rds-extended-support", "open-source-rds-extended-support-disabled"] | None
    ) = Field(
        default=None,
        description="RDS Extended Support enrollment, fixed when RDS creates the instance (a later change "
        "does nothing and shows on every plan). Unset: disabled for 8.4 (no charge ever starts by itself; "
        "RDS upgrades the instance when 8.4's standard support ends), enrolled for 8.0 (what RDS did by "
        "default). An existing instance keeps what it has: the upgrade command writes it here.",
    )
    allow_major_version_upgrade: Bool = Field(
        default=False,
        description="Let this deploy change the major version (RDS refuses a major change without it, before "
        "touching the instance). Set by `python -m ops db upgrade-engine` with the new version.",
    )
    apply_immediately: Bool | None = Field(
        default=None,
        description="Apply database changes during the deploy; unset: yes outside production, in the "
        "maintenance window in production. A major upgrade needs true: deferred, the new parameter group "
        "cannot be used before the window (the upgrade command sets it).",
    )
    allocated_storage_gb: Int = Field(default=20, ge=20, le=65536, description="Initial gp3 storage.")
    max_allocated_storage_gb: Int = Field(
        default=100,
        ge=20,
        le=65536,
        description="Storage autoscaling ceiling; at least `allocated_storage_gb`.",
    )
    backup_retention_days: Int = Field(
        default=7,
        ge=1,
        le=35,
        description="Days automated backups are kept; a final snapshot is always kept.",
    )
    multi_az: Bool = Field(default=False, description="A standby instance in a second zone.")
    deletion_protection: Bool = Field(default=False, description="RDS deletion protection.")
    restore_from_snapshot: Str | None = Field(
        default=None,
        pattern=r"^[A-Za-z]([A-Za-z0-9]|-[A-Za-z0-9]){0,254}$",  # RDS snapshot identifier rules
        description="Roll back an MLflow upgrade: the database is replaced by this snapshot (the one "
        "`ops mlflow upgrade` took, `<prefix>-pre-mlflow-<release>`; runbook mlflow-upgrade.md, Rollback), "
        "or a MySQL engine upgrade (`ops db upgrade-engine`'s `<prefix>-pre-mysql-8-4`, with engine_version "
        "back to the snapshot's; runbook mysql-major-upgrade.md). Keep it afterwards: removing it changes "
        "nothing.",
    )
    performance_insights: Bool = Field(
        default=False,
        description="Performance Insights (encrypted with the stack's key); not offered on the t2/t3/t4g "
        "micro and small classes.",
    )
    monitoring_interval: Literal[0, 1, 5, 10, 15, 30, 60] = Field(
        default=0, description="Enhanced monitoring interval in seconds; 0 turns it off."
    )
    # "audit" is left out: on RDS for MySQL it needs an option group with the MariaDB audit plugin.
    log_exports: tuple[Literal["error", "general", "slowquery"], ...] = Field(
        default=("error", "slowquery"),
        description="Logs exported to (pre-created, encrypted) log groups, each at most once.",
    )

    @model_validator(mode="after")
    def _storage(self) -> DatabaseSettings:
        if self.max_allocated_storage_gb < self.allocated_storage_gb:
            raise ValueError("max_allocated_storage_gb must be at least allocated_storage_gb")
        if self.performance_insights and self.instance_class in NO_PERFORMANCE_INSIGHTS:
            raise ValueError(f"performance_insights is not available on {self.instance_class}")
        if len(set(self.log_exports)) != len(self.log_exports):
            raise ValueError("log_exports lists a log twice")
        return self

    @property
    def major_version(self) -> str:
        return mysql_major(self.engine_version)

    @property
    def parameter_group_family(self) -> str:
        """``mysql8.4``: a DB parameter group serves one major version."""
        return f"mysql{self.major_version}"

    @property
    def lifecycle_support(self) -> str:
        """``engine_lifecycle_support``, or what an unset key means for this major version."""
        if self.engine_lifecycle_support is not None:
            return self.engine_lifecycle_support
        return EXTENDED_SUPPORT if self.major_version in MYSQL_UPGRADE_SOURCES else NO_EXTENDED_SUPPORT

    @property
    def is_upgrade_source(self) -> bool:
        """An existing database on a major version past standard support, to be upgraded."""
        return self.major_version in MYSQL_UPGRADE_SOURCES


class CacheSettings(Frozen):
    """ElastiCache for Redis 7 (see docs/decisions: stock MLflow does not use it)."""

    enabled: Bool = Field(default=False, description="Create the Redis replication group.")
    node_type: Str = Field(
        default="cache.t4g.micro", pattern=r"^cache\.[a-z0-9]+\.[a-z0-9]+$", description="Redis node type."
    )
    num_nodes: Int = Field(
        default=2,
        ge=1,
        le=6,
        description="Redis nodes, at most two per availability zone; 2 or more enables automatic "
        "failover and multi-AZ.",
    )
    engine_version: Str = Field(default="7.1", pattern=r"^7\.\d+$", description="Redis 7 engine version.")
    snapshot_retention_days: Int = Field(
        default=1, ge=0, le=35, description="Days daily snapshots are kept; 0 takes none."
    )


class LoadBalancerSettings(Frozen):
    """The internet-facing application load balancer: HTTPS only (port 80 redirects), so that the
    passwords of MLflow's sign-in never travel in clear text. Its certificate is either an existing
    one (`certificate_arn`, the custom hosts in `server.allowed_hosts`) or created by the stack
    (`hosted_zone_id` and `host_name`: a DNS-validated ACM certificate and the alias record)."""

    # Private by default: who may even reach the sign-in page is a decision.
    ingress_cidrs: tuple[Cidr, ...] = Field(
        default=("10.0.0.0/8",),
        min_length=1,
        description="Networks allowed to reach the load balancer (443, and 80 for the redirect).",
    )
    certificate_arn: Str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$",
        description="An existing ACM certificate of the HTTPS listener, covering the names in "
        "`server.allowed_hosts`; or leave it unset and set `hosted_zone_id` and `host_name`.",
    )
    hosted_zone_id: Str | None = Field(
        default=None,
        pattern=r"^Z[A-Z0-9]{1,31}$",
        description="A public Route 53 hosted zone holding `host_name`: the stack creates the "
        "DNS-validated certificate and the alias record there (instead of `certificate_arn`).",
    )
    host_name: Hostname | None = Field(
        default=None,
        description="With `hosted_zone_id`: the name users reach MLflow on (e.g. mlflow-dev.example.org), "
        "a name of that zone, not a wildcard.",
    )
    ssl_policy: Literal["ELBSecurityPolicy-TLS13-1-2-2021-06", "ELBSecurityPolicy-TLS13-1-3-2021-06"] = Field(
        default="ELBSecurityPolicy-TLS13-1-2-2021-06", description="TLS policy of the HTTPS listener."
    )
    deletion_protection: Bool = Field(default=False, description="Load balancer deletion protection.")
    idle_timeout_seconds: Int = Field(
        default=300, ge=1, le=4000, description="Idle timeout (large artifact uploads need a long one)."
    )


class StorageSettings(Frozen):
    """The artifact bucket and the log bucket (ALB and S3 access logs)."""

    noncurrent_version_expiration_days: Int = Field(
        default=90, ge=1, le=3650, description="Days artifact versions are kept after an overwrite or delete."
    )
    abort_incomplete_multipart_upload_days: Int = Field(
        default=7,
        ge=1,
        le=365,
        description="Days after which incomplete uploads to either bucket are aborted.",
    )
    log_expiration_days: Int = Field(
        default=365, ge=1, le=3650, description="Days load balancer and S3 access logs are kept."
    )


class AlertSettings(Frozen):
    """Who is told, and when: SNS e-mail subscriptions and CloudWatch alarm thresholds."""

    emails: tuple[Email, ...] = Field(
        default=(), description="E-mail subscriptions of the alerts topic (each address confirms once)."
    )
    http_5xx_rate_percent: Int = Field(
        default=5, ge=1, le=100, description="Alarm: share of load balancer responses that are 5xx."
    )
    db_cpu_percent: Int = Field(default=80, ge=1, le=100, description="Alarm: database CPU utilisation.")
    db_free_storage_gb: Int = Field(
        default=5, ge=1, le=10000, description="Alarm: database free storage falls below this."
    )
    cache_memory_percent: Int = Field(
        default=80, ge=1, le=100, description="Alarm: Redis memory utilisation."
    )


class AuthSettings(Frozen):
    """MLflow's built-in sign-in (`mlflow server --app-name basic-auth`): every person and client
    signs in; permissions are per experiment and registered model (docs/stacks/mlflow.md, Sign-in).
    The admin's password is generated outside Terraform and kept in Secrets Manager."""

    admin_username: Str = Field(
        default="admin",
        pattern=r"^[A-Za-z][A-Za-z0-9_.@-]{2,63}$",
        description="The MLflow administrator created at the first start. MLflow's default `admin` is "
        "a documentation placeholder here (plan and deploy refuse it): a guessable name halves the work "
        "of guessing a sign-in.",
    )
    default_permission: Literal["READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS"] = Field(
        default="NO_PERMISSIONS",
        description="What a signed-in user may do with an experiment or model nobody granted them "
        "anything on (MLflow's `default_permission`); production requires `NO_PERMISSIONS`.",
    )


class MlflowSettings(Frozen):
    """Sizes and switches of the MLflow platform stack."""

    mlflow_version: Str = Field(
        default=MLFLOW_VERSION,
        pattern=r"^\d+\.\d+\.\d+$",
        description="MLflow release installed on the instances: the one the shipped constraints pin "
        "(`platform_config/mlflow_constraints.py`, regenerated by `python -m rehearsal.constraints`).",
    )
    create_autoscaling_service_linked_role: Bool = Field(
        default=False,
        description="Create `AWSServiceRoleForAutoScaling` (the stack key's policy names it). AWS creates "
        "it with an account's first auto scaling group and refuses to create it twice, so leave this "
        "false unless the account has none (the plan then fails reading it).",
    )
    log_retention_days: RetentionDays = Field(
        default=365, description="Retention of every log group of the stack."
    )
    server: ServerSettings = Field(default=ServerSettings(), description="The MLflow instances.")
    database: DatabaseSettings = Field(default=DatabaseSettings(), description="The backend store (RDS).")
    cache: CacheSettings = Field(default=CacheSettings(), description="The Redis replication group.")
    load_balancer: LoadBalancerSettings = Field(
        default=LoadBalancerSettings(), description="The application load balancer."
    )
    storage: StorageSettings = Field(default=StorageSettings(), description="The artifact and log buckets.")
    alerts: AlertSettings = Field(
        default=AlertSettings(), description="Alert recipients and alarm thresholds."
    )
    auth: AuthSettings = Field(default=AuthSettings(), description="Sign-in and default permissions.")

    @model_validator(mode="after")
    def _version(self) -> MlflowSettings:
        if self.mlflow_version != MLFLOW_VERSION:
            raise ValueError(
                f"mlflow_version {self.mlflow_version} is not the release the shipped constraints pin "
                f"({MLFLOW_VERSION}): regenerate them with `python -m rehearsal.constraints --version "
                f"{self.mlflow_version}` and rehearse (`make rehearse`)"
            )
        return self
