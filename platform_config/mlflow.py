"""The ``mlflow = { ... }`` block of an environment's tfvars (MLflow platform stack).

Every key has a default suited to a small non-production environment; production environments
must opt in to the settings :meth:`MlflowSettings.check` lists (multi-AZ, deletion protection, ...).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from platform_config.types import Bool, Cidr, Frozen, Int, Str

if TYPE_CHECKING:
    from platform_config.environment import EnvironmentSettings

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


def _retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(
            f"{value} is not a CloudWatch retention period ({', '.join(map(str, LOG_RETENTION_DAYS))})"
        )
    return value


Email = Annotated[Str, AfterValidator(_email)]
Hostname = Annotated[Str, AfterValidator(_hostname)]
RetentionDays = Annotated[Int, AfterValidator(_retention)]


class ServerSettings(Frozen):
    """The EC2 instances running MLflow behind nginx, and their auto scaling group."""

    instance_type: Str = Field(default="t3.medium", pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
    ami_ssm_parameter: Str = Field(
        default="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
        pattern=r"^/aws/service/ami-amazon-linux-latest/al2023-ami-",
    )
    root_volume_size_gb: Int = Field(default=30, ge=20, le=1000)
    min_size: Int = Field(default=1, ge=1, le=20)
    max_size: Int = Field(default=2, ge=1, le=20)
    desired_capacity: Int = Field(default=1, ge=1, le=20)
    cpu_target_percent: Int = Field(default=60, ge=10, le=90)
    workers: Int = Field(default=4, ge=1, le=64)
    allowed_hosts: tuple[Hostname, ...] = ()

    @model_validator(mode="after")
    def _sizes(self) -> ServerSettings:
        if not self.min_size <= self.desired_capacity <= self.max_size:
            raise ValueError(
                f"needs min_size <= desired_capacity <= max_size (got {self.min_size}, "
                f"{self.desired_capacity}, {self.max_size})"
            )
        return self


class DatabaseSettings(Frozen):
    """RDS for MySQL 8.0, MLflow's backend store."""

    instance_class: Str = Field(default="db.t3.micro", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")
    engine_version: Str = Field(default="8.0", pattern=r"^8\.0(\.\d+)?$")
    allocated_storage_gb: Int = Field(default=20, ge=20, le=65536)
    max_allocated_storage_gb: Int = Field(default=100, ge=20, le=65536)
    backup_retention_days: Int = Field(default=7, ge=1, le=35)
    multi_az: Bool = False
    deletion_protection: Bool = False
    performance_insights: Bool = False
    monitoring_interval: Literal[0, 1, 5, 10, 15, 30, 60] = 0
    # "audit" is left out: on RDS for MySQL it needs an option group with the MariaDB audit plugin.
    log_exports: tuple[Literal["error", "general", "slowquery"], ...] = ("error", "slowquery")

    @model_validator(mode="after")
    def _storage(self) -> DatabaseSettings:
        if self.max_allocated_storage_gb < self.allocated_storage_gb:
            raise ValueError("max_allocated_storage_gb must be at least allocated_storage_gb")
        if self.performance_insights and self.instance_class in NO_PERFORMANCE_INSIGHTS:
            raise ValueError(f"performance_insights is not available on {self.instance_class}")
        if len(set(self.log_exports)) != len(self.log_exports):
            raise ValueError("log_exports lists a log twice")
        return self


class CacheSettings(Frozen):
    """ElastiCache for Redis 7 (see the README: stock MLflow does not use it)."""

    enabled: Bool = False
    node_type: Str = Field(default="cache.t4g.micro", pattern=r"^cache\.[a-z0-9]+\.[a-z0-9]+$")
    num_nodes: Int = Field(default=2, ge=1, le=6)
    engine_version: Str = Field(default="7.1", pattern=r"^7\.\d+$")
    snapshot_retention_days: Int = Field(default=1, ge=0, le=35)


class LoadBalancerSettings(Frozen):
    """The internet-facing application load balancer."""

    # Private by default: opening MLflow (which has no login here) to the internet is a decision.
    ingress_cidrs: tuple[Cidr, ...] = Field(default=("10.0.0.0/8",), min_length=1)
    certificate_arn: Str | None = Field(
        default=None, pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$"
    )
    ssl_policy: Literal["ELBSecurityPolicy-TLS13-1-2-2021-06", "ELBSecurityPolicy-TLS13-1-3-2021-06"] = (
        "ELBSecurityPolicy-TLS13-1-2-2021-06"
    )
    deletion_protection: Bool = False
    idle_timeout_seconds: Int = Field(default=300, ge=1, le=4000)


class StorageSettings(Frozen):
    """The artifact bucket and the log bucket (ALB and S3 access logs)."""

    noncurrent_version_expiration_days: Int = Field(default=90, ge=1, le=3650)
    abort_incomplete_multipart_upload_days: Int = Field(default=7, ge=1, le=365)
    log_expiration_days: Int = Field(default=365, ge=1, le=3650)


class AlertSettings(Frozen):
    """Who is told, and when: SNS e-mail subscriptions and CloudWatch alarm thresholds."""

    emails: tuple[Email, ...] = ()
    http_5xx_rate_percent: Int = Field(default=5, ge=1, le=100)
    db_cpu_percent: Int = Field(default=80, ge=1, le=100)
    db_free_storage_gb: Int = Field(default=5, ge=1, le=10000)
    cache_memory_percent: Int = Field(default=80, ge=1, le=100)


class MlflowSettings(Frozen):
    """Sizes and switches of the MLflow platform stack."""

    mlflow_version: Str = Field(default="3.17.2", pattern=r"^\d+\.\d+\.\d+$")
    log_retention_days: RetentionDays = 365
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    cache: CacheSettings = CacheSettings()
    load_balancer: LoadBalancerSettings = LoadBalancerSettings()
    storage: StorageSettings = StorageSettings()
    alerts: AlertSettings = AlertSettings()

    @model_validator(mode="after")
    def _version(self) -> MlflowSettings:
        major, minor, _ = (int(p) for p in self.mlflow_version.split("."))
        if (major, minor) < (3, 5):
            raise ValueError(
                f"mlflow_version {self.mlflow_version} is too old: 3.5.0+ is needed for --allowed-hosts"
            )
        return self

    def check(self, env: EnvironmentSettings) -> list[tuple[str, str]]:
        """Cross-field problems as ``(key under mlflow, message)``; the loader adds the file."""
        problems: list[tuple[str, str]] = []
        if self.cache.enabled and self.cache.num_nodes > len(env.network.availability_zones) * 2:
            problems.append(("cache.num_nodes", "more nodes than two per availability zone"))
        if not env.is_production:
            return problems
        required = {
            "database.multi_az": self.database.multi_az,
            "database.deletion_protection": self.database.deletion_protection,
            "database.performance_insights": self.database.performance_insights,
            "load_balancer.deletion_protection": self.load_balancer.deletion_protection,
        }
        for key, value in required.items():
            if not value:
                problems.append((key, "must be true in a production environment"))
        if self.database.monitoring_interval == 0:
            problems.append(("database.monitoring_interval", "enhanced monitoring must be on in production"))
        if self.database.backup_retention_days < 7:
            problems.append(("database.backup_retention_days", "must be at least 7 in production"))
        if self.load_balancer.certificate_arn is None:
            problems.append(
                ("load_balancer.certificate_arn", "production serves HTTPS only: set an ACM certificate")
            )
        if self.server.min_size < 2:
            problems.append(("server.min_size", "must be at least 2 in production (one instance per zone)"))
        if self.cache.enabled and self.cache.num_nodes < 2:
            problems.append(("cache.num_nodes", "must be at least 2 in production (automatic failover)"))
        if not self.alerts.emails:
            problems.append(("alerts.emails", "production alerts need at least one recipient"))
        if self.log_retention_days < 365:
            problems.append(("log_retention_days", "must be at least 365 in production"))
        return problems
