"""Secrets whose values Terraform never holds: each is an ``aws_secretsmanager_secret`` without a
version. The provisioning Lambda (``constructs_lib.db_users``, ``db_users_lambda/generated_secrets.py``)
gives it a generated value; the instances read it at start. So neither the value nor anything
derived from it is in a state or plan file (``tests/stacks/test_no_secret_in_state.py`` checks every
stack for attributes Terraform would store with a generated value in them)."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.secretsmanager_secret import SecretsmanagerSecret
from constructs import Construct

from constructs_lib.policy import skip_checks

RECOVERY_WINDOW_DAYS = 7


@dataclass(frozen=True)
class GeneratedSecretProps:
    address: str  # aws_secretsmanager_secret.<address>
    name: str
    description: str
    kms_key_arn: str
    rotation: str  # how it is rotated, for the record of the checkov finding


def generated_secret(scope: Construct, props: GeneratedSecretProps) -> SecretsmanagerSecret:
    secret = SecretsmanagerSecret(
        scope,
        f"secret_{props.address}",
        name=props.name,
        description=props.description,
        kms_key_id=props.kms_key_arn,
        recovery_window_in_days=RECOVERY_WINDOW_DAYS,
    )
    secret.override_logical_id(props.address)
    skip_checks(secret, {"CKV2_AWS_57": props.rotation})
    return secret
