"""The typed contents of ``env_specific_vars/<env>.tfvars``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from platform_config.databricks import DatabricksSettings
from platform_config.mlflow import MlflowSettings
from platform_config.types import Bool, Cidr, Frozen, Int, Region, Str

RESERVED_TAGS = ("Project", "Environment", "Stack", "ManagedBy")


class StateBucketSettings(Frozen):
    """Encryption and retention of the environment's Terraform state bucket (bootstrap stack)."""

    sse_algorithm: Literal["aws:kms", "AES256"] = "aws:kms"
    noncurrent_version_expiration_days: Int = Field(default=90, ge=1, le=3650)
    abort_incomplete_multipart_upload_days: Int = Field(default=7, ge=1, le=365)
    kms_deletion_window_days: Int = Field(default=30, ge=7, le=30)


class NetworkSettings(Frozen):
    """The MLflow platform's VPC: one public, private and database subnet per availability zone."""

    vpc_cidr: Cidr
    availability_zones: tuple[Str, ...] = Field(min_length=2, max_length=3)
    public_subnet_cidrs: tuple[Cidr, ...]
    private_subnet_cidrs: tuple[Cidr, ...]
    database_subnet_cidrs: tuple[Cidr, ...]
    single_nat_gateway: Bool = False


class EnvironmentSettings(Frozen):
    """Every per-environment value; file name and ``environment`` must agree."""

    environment: Str
    aws_region: Region
    is_production: Bool = False
    bootstrap_state: Literal["local", "s3"] = "local"
    tags: dict[Str, Str] = Field(default_factory=dict)
    state_bucket: StateBucketSettings = StateBucketSettings()
    network: NetworkSettings
    mlflow: MlflowSettings = MlflowSettings()
    databricks: DatabricksSettings = DatabricksSettings()
