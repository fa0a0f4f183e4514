"""Who may sign in to an environment's MLflow, and what they may do: users, automation accounts,
permissions per experiment and registered model, the admin's password. Each call goes through
MLflow's own ``AuthServiceClient`` (ops/mlflow/auth_client.py, in .venv-mlflow), signed in as the
environment's administrator, whose password is read from Secrets Manager (``<prefix>-admin-password``)
with the operator's AWS credentials. No password is ever an argument or in a Terraform file.

- a person's first password is printed once (hand it over; they change it with MLflow's
  update-password API or the UI's account page);
- an automation account's password goes into a Secrets Manager secret of its own
  (``<prefix>-user-<name>``, under the stack's key), never printed;
- ``admin rotate``: a new admin password is written to the secret as AWSPENDING, set through MLflow
  (which asks for the current one), then made AWSCURRENT. Interrupted, it resumes: the pending value
  is reused, and whichever of the two passwords MLflow accepts says how far it got.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from ops.mlflow import venv
from ops.runner import CommandError, UsageError
from platform_config.loader import Environment

CLIENT = Path(__file__).with_name("auth_client.py")
CALL_TIMEOUT = 120
PASSWORD_BYTES = 24  # 32 URL-safe characters; MLflow asks for at least 12
RESOURCE_TYPES = {"experiment": "experiment", "model": "registered_model"}
PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE", "DENY")


@dataclass(frozen=True)
class Target:
    env: Environment
    url: str

    @property
    def admin(self) -> str:
        return self.env.settings.mlflow.auth.admin_username

    @property
    def region(self) -> str:
        return self.env.settings.aws_region


def promote(sm: Any, secret_id: str, pending: str, current_version: str) -> None:
    """The secret's AWSPENDING version becomes AWSCURRENT (the current one AWSPREVIOUS), and loses
    its AWSPENDING label."""
    sm.update_secret_version_stage(
        SecretId=secret_id,
        VersionStage="AWSCURRENT",
        MoveToVersionId=pending,
        RemoveFromVersionId=current_version,
    )
    sm.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSPENDING", RemoveFromVersionId=pending)


def target(env: Environment, url: str | None) -> Target:
    chosen = url or env.names.mlflow.url
    if not chosen.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise UsageError(
            f"--url {chosen!r}: sign-in sends a password: https only (or a server on this machine)"
        )
    return Target(env, chosen.rstrip("/"))


def secretsmanager(t: Target) -> Any:
    return boto3.client("secretsmanager", region_name=t.region)


def current_secret(sm: Any, secret_id: str) -> tuple[str, str]:
    """(value, version id) of the secret's AWSCURRENT version."""
    try:
        found = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
    except sm.exceptions.ResourceNotFoundException:
        raise CommandError(f"secret {secret_id} not found (is the stack deployed in this account?)") from None
    return str(found["SecretString"]), str(found["VersionId"])


def call(t: Target, signed_in_as: str, password: str, name: str, /, **args: Any) -> Any:
    """One AuthServiceClient call, signed in as ``signed_in_as``; CommandError names the refusal."""
    python = venv.ensure()
    try:
        done = subprocess.run(
            [str(python), str(CLIENT), t.url],
            input=json.dumps({"call": name, "args": args}),
            capture_output=True,
            text=True,
            timeout=CALL_TIMEOUT,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")},
                "MLFLOW_TRACKING_USERNAME": signed_in_as,
                "MLFLOW_TRACKING_PASSWORD": password,
            },
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CommandError(f"{t.url}: no answer to {name} within {CALL_TIMEOUT} s") from None
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise CommandError(f"{t.url}: {name} failed: {tail}") from None
    if not answer["ok"]:
        raise CommandError(f"{t.url}: {name} refused ({answer.get('status')}): {answer['error']}")
    return answer["result"]


def as_admin(t: Target, name: str, /, **args: Any) -> Any:
    password, _ = current_secret(secretsmanager(t), t.env.names.mlflow.admin_password_secret)
    return call(t, t.admin, password, name, **args)


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def create_user(t: Target, username: str, service_account: bool) -> str:
    """The line to print: the password (a person) or where it is kept (an automation account).

    An automation account's secret is written before MLflow creates the user, so the password is
    never only in MLflow: if MLflow refuses the user, a secret this call created is deleted again,
    and a secret left by an earlier interrupted call (its user never created) is reused."""
    password = new_password()
    if not service_account:
        as_admin(t, "create_user", username=username, password=password)
        return f"created {username}; first password (shown once, hand it over): {password}"
    sm, name = secretsmanager(t), t.env.names.mlflow.user_secret(username)
    arn, created = store_new_account_password(t, sm, name, username, password)
    try:
        as_admin(t, "create_user", username=username, password=password)
    except CommandError:
        if created:
            sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        raise
    return f"created {username}; its password is in {arn} (MLFLOW_TRACKING_USERNAME={username})"


def store_new_account_password(
    t: Target, sm: Any, name: str, username: str, password: str
) -> tuple[str, bool]:
    """(ARN, created now): a new secret, or the one an interrupted earlier call left."""
    try:
        created = sm.create_secret(
            Name=name,
            Description=f"MLflow password of the automation account {username} ({t.url})",
            KmsKeyId=t.env.names.mlflow.kms_alias,
            SecretString=password,
            Tags=[
                {"Key": "Environment", "Value": t.env.name},
                {"Key": "ManagedBy", "Value": "ops mlflow"},
            ],
        )
        return str(created["ARN"]), True
    except sm.exceptions.ResourceExistsException:
        pass
    if user_exists(t, username):
        raise CommandError(
            f"{username} is an account already (its password is in {name}): "
            f"`ops mlflow user reset-password --service-account {username}` gives it a new one"
        ) from None
    return str(sm.put_secret_value(SecretId=name, SecretString=password)["ARN"]), False


def user_exists(t: Target, username: str) -> bool:
    try:
        as_admin(t, "get_user", username=username)
    except CommandError as exc:
        if "(404)" in str(exc) or "RESOURCE_DOES_NOT_EXIST" in str(exc):
            return False
        raise
    return True


def reset_password(t: Target, username: str, service_account: bool) -> str:
    """A person's new password is printed once. An automation account's is first written to its
    secret as AWSPENDING, then set in MLflow, then made AWSCURRENT: no step leaves it only in MLflow."""
    password = new_password()
    if not service_account:
        as_admin(t, "update_user_password", username=username, password=password)
        return f"new password of {username} (shown once): {password}"
    sm, name = secretsmanager(t), t.env.names.mlflow.user_secret(username)
    _, current_version = current_secret(sm, name)
    pending = str(
        sm.put_secret_value(SecretId=name, SecretString=password, VersionStages=["AWSPENDING"])["VersionId"]
    )
    as_admin(t, "update_user_password", username=username, password=password)
    try:
        promote(sm, name, pending, current_version)
    except Exception as exc:
        raise CommandError(
            f"MLflow has {username}'s new password, but {name} could not be switched to it ({exc}): it is the "
            f"secret's AWSPENDING version {pending}; make that AWSCURRENT (aws secretsmanager "
            "update-secret-version-stage)"
        ) from None
    arn = sm.describe_secret(SecretId=name)["ARN"]
    return f"new password of {username} stored in {arn}"


def resource(t: Target, experiment: str | None, model: str | None) -> tuple[str, str]:
    if (experiment is None) == (model is None):
        raise UsageError("name exactly one of --experiment and --model")
    if experiment is not None:
        return "experiment", str(as_admin(t, "experiment_id", name_or_id=experiment))
    return "registered_model", str(model)


def grant(t: Target, username: str, experiment: str | None, model: str | None, permission: str) -> str:
    """Set the user's own permission on the resource. MLflow refuses a second grant on the same
    resource (RESOURCE_ALREADY_EXISTS, mlflow/server/auth/sqlalchemy_store.py) and has no update
    for a user's grant: the old one is revoked first, and for that moment default_permission applies."""
    kind, ident = resource(t, experiment, model)
    args = {"username": username, "resource_type": kind, "resource_id": ident}
    try:
        as_admin(t, "grant_user_permission", **args, permission=permission)
    except CommandError as exc:
        if "already exists" not in str(exc):
            raise
        as_admin(t, "revoke_user_permission", **args)
        as_admin(t, "grant_user_permission", **args, permission=permission)
        return f"{username}: {permission} on {kind} {ident} (replaced the earlier grant)"
    return f"{username}: {permission} on {kind} {ident}"


def revoke(t: Target, username: str, experiment: str | None, model: str | None) -> str:
    kind, ident = resource(t, experiment, model)
    as_admin(t, "revoke_user_permission", username=username, resource_type=kind, resource_id=ident)
    return f"{username}: no permission of its own on {kind} {ident} (default_permission applies)"


def accepts(t: Target, password: str) -> bool:
    try:
        call(t, t.admin, password, "get_user", username=t.admin)
    except CommandError as exc:
        if "(401)" in str(exc):
            return False
        raise
    return True


def rotate_admin(t: Target) -> str:
    sm, secret_id = secretsmanager(t), t.env.names.mlflow.admin_password_secret
    current, current_version = current_secret(sm, secret_id)
    stages = sm.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {})
    pending = next((v for v, labels in stages.items() if "AWSPENDING" in labels), None)
    if pending is not None and pending != current_version:
        new = str(sm.get_secret_value(SecretId=secret_id, VersionId=pending)["SecretString"])
    else:
        new = new_password()
        pending = str(
            sm.put_secret_value(SecretId=secret_id, SecretString=new, VersionStages=["AWSPENDING"])[
                "VersionId"
            ]
        )
    if accepts(t, current):
        call(
            t,
            t.admin,
            current,
            "update_user_password",
            username=t.admin,
            password=new,
            current_password=current,
        )
    elif not accepts(t, new):
        raise CommandError(
            f"MLflow at {t.url} takes neither the current nor the pending password of {t.admin}: set it "
            f"by hand (another admin, update-password), then put it into {secret_id} as AWSCURRENT"
        )
    promote(sm, secret_id, pending, current_version)
    if not accepts(t, new):
        raise CommandError(f"{t.admin}'s new password is not accepted by {t.url}")
    return (
        f"rotated the password of {t.admin} ({secret_id}, version {pending}); MLflow's workers forget the old "
        "one within their sign-in cache's lifetime (30 s)"
    )
