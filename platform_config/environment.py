"""The typed contents of ``env_specific_vars/<env>.tfvars``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from platform_config.databricks import DatabricksSettings
from platform_config.mlflow import MlflowSettings
from platform_config.types import Bool, Cidr, Frozen, Int, Region, Str

RESERVED_TAGS = ("Project", "Environment", "Stack", "ManagedBy")


class StateReplicationSettings(Frozen):
    """Cross-region replication of the state bucket: a copy of every state version, encrypted with
    its own key, outside the environment's region."""

    enabled: Bool = Field(
        default=False,
        description="Replicate the state bucket (every version and delete marker) to `region`.",
    )
    region: Region | None = Field(
        default=None,
        description="Region of the replica bucket and its key; required with `enabled`, and not "
        "`aws_region`.",
    )


class StateBucketSettings(Frozen):
    """Encryption and retention of the environment's Terraform state bucket (bootstrap stack)."""

    sse_algorithm: Literal["aws:kms", "AES256"] = Field(
        default="aws:kms",
        description="State bucket encryption; `aws:kms` uses the bootstrap stack's rotating customer "
        "key (the backend config then needs `kms_key_id`).",
    )
    noncurrent_version_expiration_days: Int = Field(
        default=90, ge=1, le=3650, description="Days old state versions are kept."
    )
    abort_incomplete_multipart_upload_days: Int = Field(
        default=7, ge=1, le=365, description="Days after which incomplete uploads are aborted."
    )
    kms_deletion_window_days: Int = Field(
        default=30, ge=7, le=30, description="Waiting period before the state key can be deleted."
    )
    access_log_expiration_days: Int = Field(
        default=365,
        ge=1,
        le=3650,
        description="Days the state bucket's server access logs (who read or wrote which state) are "
        "kept in its log bucket.",
    )
    replication: StateReplicationSettings = Field(
        default=StateReplicationSettings(), description="Cross-region replication of the state bucket."
    )


class NetworkSettings(Frozen):
    """The MLflow platform's VPC: one public, private and database subnet per availability zone."""

    vpc_cidr: Cidr = Field(description="The MLflow VPC.")
    availability_zones: tuple[Str, ...] = Field(
        min_length=2, max_length=3, description="2-3 distinct zones of `aws_region`."
    )
    public_subnet_cidrs: tuple[Cidr, ...] = Field(
        description="Load balancer and NAT subnets: one per zone, inside `vpc_cidr`, overlapping no other subnet."
    )
    private_subnet_cidrs: tuple[Cidr, ...] = Field(
        description="MLflow instance subnets: one per zone, inside `vpc_cidr`, overlapping no other subnet."
    )
    database_subnet_cidrs: tuple[Cidr, ...] = Field(
        description="RDS and Redis subnets: one per zone, inside `vpc_cidr`, overlapping no other subnet."
    )
    single_nat_gateway: Bool = Field(
        default=False,
        description="One shared NAT gateway instead of one per zone (cheaper, not zone-redundant).",
    )
    overlap_allowed_with: tuple[Str, ...] = Field(
        default=(),
        description="Environments whose `vpc_cidr` may overlap this one's, because the two networks "
        "are never connected (no peering, transit gateway or VPN): each must exist, and both "
        "environments must set `aws_account_id`, to different accounts. Otherwise overlapping VPC "
        "ranges are an error.",
    )


class EnvironmentSettings(Frozen):
    """Every per-environment value; file name and ``environment`` must agree."""

    environment: Str = Field(
        description='Must equal the file name (`dev.tfvars` -> `"dev"`): 2-8 lowercase letters or digits, '
        "starting with a letter."
    )
    aws_region: Region = Field(description="AWS region of the environment (state bucket, MLflow platform).")
    aws_account_id: Str | None = Field(
        default=None,
        pattern=r"^\d{12}$",
        description="AWS account of the environment, when known: ARNs in the settings (certificates) "
        "must belong to it.",
    )
    is_production: Bool = Field(
        default=False,
        description="Turns on the production rules: the keys marked in the Production column must hold.",
    )
    bootstrap_state: Literal["local", "s3"] = Field(
        default="local",
        description="Where `bootstrap-<env>` keeps its own state: `local` until its state bucket exists, "
        "then `s3` (see the bootstrap runbook).",
    )
    tags: dict[Str, Str] = Field(
        default_factory=dict,
        description="Extra tags on every AWS resource (provider `default_tags`); `Project`, `Environment`, "
        "`Stack` and `ManagedBy` are set by the app and refused here.",
    )
    state_bucket: StateBucketSettings = Field(
        default=StateBucketSettings(), description="The Terraform state bucket (bootstrap stack)."
    )
    network: NetworkSettings = Field(description="The MLflow platform's VPC and subnets.")
    mlflow: MlflowSettings = Field(default=MlflowSettings(), description="The MLflow platform stack.")
    databricks: DatabricksSettings = Field(description="The Databricks MLOps stack.")
