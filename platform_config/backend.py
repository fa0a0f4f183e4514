"""The typed contents of ``backend_configs/<env>.config`` (a Terraform partial S3 backend config)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from platform_config.types import Bool, Frozen, Region, Str

# Keys Terraform accepts but this project refuses, with the reason given to the user.
REFUSED_KEYS = {
    "key": "the state key is set per stack by the app (mlopspltf_infra/<stack>/terraform.tfstate)",
    "access_key": "credentials do not belong in a committed file; use a profile, SSO or OIDC",
    "secret_key": "credentials do not belong in a committed file; use a profile, SSO or OIDC",
    "token": "credentials do not belong in a committed file; use a profile, SSO or OIDC",
    "sse_customer_key": "a customer-provided key does not belong in a committed file",
    "role_arn": "removed in Terraform 1.10; use assume_role = { role_arn = ... }",
}


class AssumeRole(Frozen):
    """The role Terraform assumes to reach the state account."""

    role_arn: Str = Field(
        pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$", description="ARN of the IAM role to assume."
    )
    session_name: Str | None = Field(default=None, description="Session name shown in CloudTrail.")
    external_id: Str | None = Field(
        default=None, description="External id the role's trust policy requires, if any."
    )


class Endpoints(Frozen):
    """Custom service endpoints (tests against a local S3/DynamoDB, private endpoints)."""

    s3: Str | None = Field(default=None, description="S3 endpoint URL.")
    dynamodb: Str | None = Field(default=None, description="DynamoDB endpoint URL (lock table).")
    sts: Str | None = Field(default=None, description="STS endpoint URL.")
    iam: Str | None = Field(default=None, description="IAM endpoint URL.")


class BackendSettings(Frozen):
    """Where and how every stack of the environment keeps its Terraform state."""

    bucket: Str = Field(
        description="State bucket; must be the environment's `mlopspltf-<env>-s3-tf-backend`."
    )
    region: Region = Field(description="Region of the state bucket; must equal the tfvars' `aws_region`.")
    encrypt: Bool = Field(description="Server-side encryption of the state objects; must be `true`.")
    dynamodb_table: Str | None = Field(
        default=None,
        description="DynamoDB lock table; must be `mlopspltf-<env>-ddb-tf-backend`. Set it, "
        "`use_lockfile = true`, or both: state must be locked.",
    )
    use_lockfile: Bool | None = Field(
        default=None,
        description="S3-native state locking (Terraform >= 1.10); CDKTF 0.21 lacks the attribute, "
        "the app adds it as an override.",
    )
    kms_key_id: Str | None = Field(
        default=None,
        description="Required when the state bucket uses `aws:kms`: `alias/mlopspltf-<env>-tf-backend` "
        "or a key ARN (the bucket refuses writes not encrypted with SSE-KMS).",
    )
    profile: Str | None = Field(default=None, description="AWS CLI profile used to reach the state account.")
    assume_role: AssumeRole | None = Field(
        default=None, description="Role to assume to reach the state account."
    )
    endpoints: Endpoints | None = Field(
        default=None, description="Custom service endpoints (private endpoints, a local test server)."
    )
    use_path_style: Bool | None = Field(
        default=None, description="Path-style S3 URLs (needed by some local S3 servers)."
    )
    skip_credentials_validation: Bool | None = Field(
        default=None, description="Skip the STS credentials check (local test servers)."
    )
    skip_requesting_account_id: Bool | None = Field(
        default=None, description="Do not ask STS/IAM for the account id (local test servers)."
    )
    skip_metadata_api_check: Bool | None = Field(
        default=None, description="Do not query the EC2 metadata API for credentials."
    )
    skip_region_validation: Bool | None = Field(
        default=None, description="Accept a region name Terraform does not know."
    )
    skip_s3_checksum: Bool | None = Field(
        default=None, description="Do not send S3 checksums (servers that do not support them)."
    )
    workspace_key_prefix: Str | None = Field(
        default=None, description="Prefix of the state keys of non-default Terraform workspaces."
    )

    def terraform_attributes(self) -> dict[str, Any]:
        """The file's settings as Terraform backend attributes (unset ones left out)."""
        return self.model_dump(exclude_none=True)
