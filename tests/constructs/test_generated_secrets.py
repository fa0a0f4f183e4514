"""The provisioning Lambda's secrets (db_users_lambda/generated_secrets.py), against moto's Secrets
Manager and an ElastiCache stand-in that keeps the API's rules for AUTH tokens (ElastiCache User
Guide, "Modifying the AUTH token on an existing cluster"): ROTATE adds a token (a group without one
then accepts no token too), SET is allowed only with the last rotated token and leaves it alone,
and nothing is modified while the group is not available. The rehearsal runs the same code over a
real Redis (rehearsal/substitutions.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from constructs_lib.db_users_lambda import generated_secrets
from constructs_lib.db_users_lambda.generated_secrets import CURRENT, GENERATED, PENDING

GROUP = "mlopspltf-prd-mlflow"


class FailureError(Exception):
    pass


@dataclass
class ElastiCache:
    """One replication group's AUTH state."""

    tokens: list[str] = field(default_factory=list)  # accepted tokens
    open_without_token: bool = True
    modifying: bool = False
    calls: list[tuple[str, str]] = field(default_factory=list)  # (strategy, token)
    fail_on: str = ""  # a strategy that fails once

    def describe_replication_groups(self, ReplicationGroupId: str) -> dict[str, Any]:  # noqa: N803
        assert ReplicationGroupId == GROUP
        return {"ReplicationGroups": [{"Status": "available", "AuthTokenEnabled": bool(self.tokens)}]}

    def modify_replication_group(self, **kwargs: Any) -> None:
        assert kwargs["ReplicationGroupId"] == GROUP and kwargs["ApplyImmediately"] is True
        assert not self.modifying, "modified while not available"
        strategy, token = kwargs["AuthTokenUpdateStrategy"], kwargs["AuthToken"]
        self.calls.append((strategy, token))
        if self.fail_on == strategy:
            self.fail_on = ""
            raise FailureError(f"{strategy} interrupted")
        if strategy == "ROTATE":
            self.tokens = [*self.tokens[-1:], token]
        elif strategy == "SET":
            if not self.tokens or self.tokens[-1] != token:
                raise AssertionError("SET is allowed only with the last rotated token")
            self.tokens, self.open_without_token = [token], False
        self.modifying = True

    def get_waiter(self, name: str) -> Any:
        assert name == "replication_group_available"
        cache = self

        class Waiter:
            def wait(self, ReplicationGroupId: str, WaiterConfig: dict[str, int]) -> None:  # noqa: N803
                cache.modifying = False

        return Waiter()


@pytest.fixture
def secretsmanager() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="eu-west-1")


def labels(sm: Any, arn: str) -> dict[str, list[str]]:
    stages: dict[str, list[str]] = sm.describe_secret(SecretId=arn).get("VersionIdsToStages", {})
    return stages


def current(sm: Any, arn: str) -> str:
    # By its label, as the instances read it (moto 5.2.5 does not move its default version when
    # AWSCURRENT moves).
    value: str = sm.get_secret_value(SecretId=arn, VersionStage=CURRENT)["SecretString"]
    return value


def test_an_empty_secret_gets_a_generated_value_once(secretsmanager: Any) -> None:
    arn = secretsmanager.create_secret(Name="admin-password")["ARN"]
    assert generated_secrets.fill(secretsmanager, arn) == "generated"
    value = current(secretsmanager, arn)
    assert len(value) == 64 and value.isalnum()
    [stages] = labels(secretsmanager, arn).values()
    assert set(stages) == {CURRENT, GENERATED}
    # Run again (every apply that replaces the invocation): kept, not regenerated.
    assert generated_secrets.fill(secretsmanager, arn) == "kept"
    assert current(secretsmanager, arn) == value


def test_a_secret_with_a_value_is_left_alone(secretsmanager: Any) -> None:
    """The admin's password: MLflow applied it at its first start; a new value would not change it."""
    arn = secretsmanager.create_secret(Name="admin-password", SecretString="set-by-rotation")["ARN"]
    assert generated_secrets.fill(secretsmanager, arn) == "kept"
    assert current(secretsmanager, arn) == "set-by-rotation"


def test_a_new_group_gets_its_token_in_two_steps(secretsmanager: Any) -> None:
    arn = secretsmanager.create_secret(Name="redis-auth-token")["ARN"]
    cache = ElastiCache()
    assert generated_secrets.redis_token(secretsmanager, cache, arn, GROUP) == "set"
    token = current(secretsmanager, arn)
    assert [strategy for strategy, _ in cache.calls] == ["ROTATE", "SET"]
    assert {t for _, t in cache.calls} == {token}
    assert cache.tokens == [token] and not cache.open_without_token
    [stages] = labels(secretsmanager, arn).values()
    assert PENDING not in stages and {CURRENT, GENERATED} <= set(stages)
    # Again: nothing to do.
    assert generated_secrets.redis_token(secretsmanager, cache, arn, GROUP) == "kept"
    assert len(cache.calls) == 2


def test_a_token_terraform_generated_is_replaced(secretsmanager: Any) -> None:
    """An earlier version of the stack stored its token in the state: the secret's current value
    has no MLOPS_GENERATED label, so a new one replaces it on the group and in the secret."""
    arn = secretsmanager.create_secret(Name="redis-auth-token", SecretString="token-from-terraform-state")[
        "ARN"
    ]
    cache = ElastiCache(tokens=["token-from-terraform-state"], open_without_token=False)
    assert generated_secrets.redis_token(secretsmanager, cache, arn, GROUP) == "replaced"
    new = current(secretsmanager, arn)
    assert new != "token-from-terraform-state"
    assert cache.tokens == [new]


def test_an_interrupted_run_resumes_with_the_same_token(secretsmanager: Any) -> None:
    arn = secretsmanager.create_secret(Name="redis-auth-token")["ARN"]
    cache = ElastiCache(fail_on="SET")
    with pytest.raises(FailureError):
        generated_secrets.redis_token(secretsmanager, cache, arn, GROUP)
    # Not confirmed yet: no version is labelled generated.
    assert not any(GENERATED in s for s in labels(secretsmanager, arn).values())
    rotated = cache.calls[0][1]
    assert generated_secrets.redis_token(secretsmanager, cache, arn, GROUP) == "set"
    assert current(secretsmanager, arn) == rotated
    assert cache.tokens == [rotated]


def test_provision_reports_each_secret_and_no_value(secretsmanager: Any) -> None:
    admin = secretsmanager.create_secret(Name="admin-password")["ARN"]
    flask = secretsmanager.create_secret(Name="flask-secret-key")["ARN"]
    redis = secretsmanager.create_secret(Name="redis-auth-token")["ARN"]
    outcome = generated_secrets.provision((admin, flask), (GROUP, redis), secretsmanager, ElastiCache())
    assert outcome == {admin: "generated", flask: "generated", redis: "set"}
    values = {current(secretsmanager, a) for a in (admin, flask, redis)}
    assert len(values) == 3
    assert not any(v in str(outcome) for v in values)
