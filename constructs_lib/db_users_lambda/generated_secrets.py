"""Secrets generated where Terraform never sees them (part of the provisioning Lambda).

Terraform creates each secret empty (``aws_secretsmanager_secret``, no version): neither the value
nor a hash of it is in any state or plan file. This module gives each one its value:

- a secret with no current value gets ``GetRandomPassword`` (64 letters and digits: valid as an
  ElastiCache AUTH token, a Flask secret key or a password), labelled ``MLOPS_GENERATED``; a
  secret that has a value is left alone (the MLflow admin's password is applied once, by MLflow, at
  its first start: changing the secret afterwards would not change the password; rotation is
  ``python -m ops mlflow admin rotate``);
- the Redis AUTH token is set on the replication group too, in ElastiCache's two steps: ``ROTATE``
  adds the token (a group without one then accepts it and no token), ``SET`` makes it the only one.
  The value waits under the label ``MLOPS_PENDING`` until both steps are done, then becomes
  ``AWSCURRENT`` with ``MLOPS_GENERATED``: an interrupted run resumes with the same value. (A
  secret's first version is ``AWSCURRENT`` from the start, Secrets Manager's rule; the instances,
  which start only after this call, never read it earlier.) A current token without ``MLOPS_GENERATED`` was not made here (the
  token an earlier version of the stack generated with Terraform, so it is in old state files and
  plans): it is replaced.

Returned: what happened to each secret, by ARN. Never a value.
"""

from __future__ import annotations

from typing import Any

GENERATED = "MLOPS_GENERATED"
PENDING = "MLOPS_PENDING"
CURRENT = "AWSCURRENT"
LENGTH = 64
# ElastiCache modifications take minutes; the Lambda's own timeout (15 min) bounds the whole call.
WAIT = {"Delay": 15, "MaxAttempts": 50}


def random_value(secretsmanager: Any) -> str:
    value: str = secretsmanager.get_random_password(
        PasswordLength=LENGTH, ExcludePunctuation=True, IncludeSpace=False, RequireEachIncludedType=True
    )["RandomPassword"]
    return value


def _stages(secretsmanager: Any, arn: str) -> dict[str, list[str]]:
    """Version id -> its labels."""
    found: dict[str, list[str]] = secretsmanager.describe_secret(SecretId=arn).get("VersionIdsToStages", {})
    return found


def _labelled(stages: dict[str, list[str]], label: str) -> str | None:
    return next((version for version, labels in stages.items() if label in labels), None)


def fill(secretsmanager: Any, arn: str) -> str:
    """Give ``arn`` a generated value unless it has one: "generated" or "kept"."""
    if _labelled(_stages(secretsmanager, arn), CURRENT) is not None:
        return "kept"
    secretsmanager.put_secret_value(
        SecretId=arn, SecretString=random_value(secretsmanager), VersionStages=[CURRENT, GENERATED]
    )
    return "generated"


def redis_token(secretsmanager: Any, elasticache: Any, arn: str, group_id: str) -> str:
    """Make the group's AUTH token a generated one, the secret's current value: "kept", "set"
    (the group had none) or "replaced"."""
    stages = _stages(secretsmanager, arn)
    current = _labelled(stages, CURRENT)
    group = elasticache.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    if current is not None and GENERATED in stages[current] and group.get("AuthTokenEnabled"):
        return "kept"
    pending = _labelled(stages, PENDING)
    if pending is not None:  # an earlier run stopped half-way: the same value, so the steps agree
        value = secretsmanager.get_secret_value(SecretId=arn, VersionId=pending)["SecretString"]
    else:
        value = random_value(secretsmanager)
        pending = secretsmanager.put_secret_value(SecretId=arn, SecretString=value, VersionStages=[PENDING])[
            "VersionId"
        ]
    # The secret held a token not made here (the one an earlier stack kept in its state): replaced.
    previous = current is not None and current != pending
    waiter = elasticache.get_waiter("replication_group_available")
    for strategy in ("ROTATE", "SET"):
        waiter.wait(ReplicationGroupId=group_id, WaiterConfig=WAIT)
        elasticache.modify_replication_group(
            ReplicationGroupId=group_id,
            AuthToken=value,
            AuthTokenUpdateStrategy=strategy,
            ApplyImmediately=True,
        )
    waiter.wait(ReplicationGroupId=group_id, WaiterConfig=WAIT)
    # Secrets Manager gives a secret's first version AWSCURRENT by itself: read the labels again.
    stages = _stages(secretsmanager, arn)
    _move(secretsmanager, arn, CURRENT, pending, _labelled(stages, CURRENT))
    _move(secretsmanager, arn, GENERATED, pending, _labelled(stages, GENERATED))
    secretsmanager.update_secret_version_stage(
        SecretId=arn, VersionStage=PENDING, RemoveFromVersionId=pending
    )
    return "replaced" if previous else "set"


def _move(secretsmanager: Any, arn: str, label: str, to: str, from_: str | None) -> None:
    if from_ == to:
        return
    args = {"SecretId": arn, "VersionStage": label, "MoveToVersionId": to}
    if from_ is not None:
        args["RemoveFromVersionId"] = from_
    secretsmanager.update_secret_version_stage(**args)


def provision(
    secret_arns: tuple[str, ...], redis: tuple[str, str] | None, secretsmanager: Any, elasticache: Any
) -> dict[str, str]:
    """Every secret's outcome by ARN; ``redis`` is (replication group id, token secret ARN)."""
    outcome = {arn: fill(secretsmanager, arn) for arn in secret_arns}
    if redis is not None:
        group_id, arn = redis
        outcome[arn] = redis_token(secretsmanager, elasticache, arn, group_id)
    return outcome
