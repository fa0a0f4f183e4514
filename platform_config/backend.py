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
    role_arn: Str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
    session_name: Str | None = None
    external_id: Str | None = None


class Endpoints(Frozen):
    """Custom service endpoints (tests against a local S3/DynamoDB, private endpoints)."""

    s3: Str | None = None
    dynamodb: Str | None = None
    sts: Str | None = None
    iam: Str | None = None


class BackendSettings(Frozen):
    bucket: Str
    region: Region
    encrypt: Bool
    dynamodb_table: Str | None = None
    use_lockfile: Bool | None = None
    kms_key_id: Str | None = None
    profile: Str | None = None
    assume_role: AssumeRole | None = None
    endpoints: Endpoints | None = None
    use_path_style: Bool | None = None
    skip_credentials_validation: Bool | None = None
    skip_requesting_account_id: Bool | None = None
    skip_metadata_api_check: Bool | None = None
    skip_region_validation: Bool | None = None
    skip_s3_checksum: Bool | None = None
    workspace_key_prefix: Str | None = None

    def terraform_attributes(self) -> dict[str, Any]:
        """The file's settings as Terraform backend attributes (unset ones left out)."""
        return self.model_dump(exclude_none=True)
