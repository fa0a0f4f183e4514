"""``ops mlflow user|grant|revoke|admin``: the failure paths, with Secrets Manager in moto and
MLflow's answers faked (``people.call``). The real calls against a running MLflow are the boot
rehearsal's steps (users, grants, revoke, admin rotation: rehearsal/harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ops.mlflow import people
from ops.runner import CommandError, UsageError
from platform_config.loader import load
from tests.conftest import ROOT


@dataclass
class FakeMlflow:
    """What MLflow's AuthServiceClient would answer: users with passwords, grants."""

    admin_password: str = ""
    users: dict[str, str] = field(default_factory=dict)
    grants: dict[tuple[str, str, str], str] = field(default_factory=dict)
    refuse: str = ""  # a call name MLflow refuses
    calls: list[str] = field(default_factory=list)

    def __call__(self, t: people.Target, who: str, password: str, name: str, /, **args: Any) -> Any:
        self.calls.append(name)
        expected = self.admin_password if who == t.admin else self.users.get(who)
        if password != expected:
            raise CommandError(f"{t.url}: {name} refused (401): bad credentials")
        if name == self.refuse:
            raise CommandError(f"{t.url}: {name} refused (500): internal error")
        if name == "create_user":
            if args["username"] in self.users:
                raise CommandError(f"{t.url}: create_user refused (400): RESOURCE_ALREADY_EXISTS")
            self.users[args["username"]] = args["password"]
        elif name == "get_user":
            if args["username"] != t.admin and args["username"] not in self.users:
                raise CommandError(f"{t.url}: get_user refused (404): RESOURCE_DOES_NOT_EXIST")
        elif name == "update_user_password":
            if args["username"] == t.admin:
                self.admin_password = args["password"]
            else:
                self.users[args["username"]] = args["password"]
        elif name == "experiment_id":
            return "7"
        elif name == "grant_user_permission":
            key = (args["username"], args["resource_type"], args["resource_id"])
            if key in self.grants:
                raise CommandError(f"{t.url}: grant refused (400): Permission ... already exists.")
            self.grants[key] = args["permission"]
        elif name == "revoke_user_permission":
            self.grants.pop((args["username"], args["resource_type"], args["resource_id"]), None)
        return None


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[people.Target, FakeMlflow, Any]]:
    env = load(ROOT)[0]
    with mock_aws():
        monkeypatch.setenv("AWS_DEFAULT_REGION", env.settings.aws_region)
        sm = boto3.client("secretsmanager", region_name=env.settings.aws_region)
        sm.create_secret(Name=env.names.mlflow.admin_password_secret, SecretString="admin-password-1")
        mlflow = FakeMlflow(admin_password="admin-password-1")
        monkeypatch.setattr(people, "call", mlflow)
        yield people.target(env, "https://mlflow.example.invalid"), mlflow, sm


def test_a_password_only_travels_over_https() -> None:
    env = load(ROOT)[0]
    with pytest.raises(UsageError, match="https only"):
        people.target(env, "http://mlflow.example.invalid")
    assert people.target(env, "http://127.0.0.1:5000").url == "http://127.0.0.1:5000"


def test_an_account_refused_by_mlflow_leaves_no_secret(world: Any) -> None:
    t, mlflow, sm = world
    mlflow.refuse = "create_user"
    with pytest.raises(CommandError, match="500"):
        people.create_user(t, "ci-bot", service_account=True)
    with pytest.raises(sm.exceptions.ResourceNotFoundException):
        sm.describe_secret(SecretId=t.env.names.mlflow.user_secret("ci-bot"))
    mlflow.refuse = ""
    assert "ci-bot" in people.create_user(t, "ci-bot", service_account=True)


def test_a_secret_left_by_an_interrupted_call_is_reused(world: Any) -> None:
    t, mlflow, sm = world
    name = t.env.names.mlflow.user_secret("ci-bot")
    sm.create_secret(Name=name, SecretString="from-a-crashed-run")
    line = people.create_user(t, "ci-bot", service_account=True)
    stored = sm.get_secret_value(SecretId=name)["SecretString"]
    assert mlflow.users["ci-bot"] == stored != "from-a-crashed-run"
    assert stored not in line


def test_an_existing_account_is_not_created_again(world: Any) -> None:
    t, _mlflow, _ = world
    people.create_user(t, "ci-bot", service_account=True)
    with pytest.raises(CommandError, match="reset-password --service-account ci-bot"):
        people.create_user(t, "ci-bot", service_account=True)


def test_a_person_gets_the_password_once(world: Any) -> None:
    t, mlflow, sm = world
    line = people.create_user(t, "alice", service_account=False)
    assert line.endswith(mlflow.users["alice"])
    assert sm.list_secrets()["SecretList"][0]["Name"] == t.env.names.mlflow.admin_password_secret


def test_reset_keeps_the_old_password_current_when_mlflow_refuses(world: Any) -> None:
    t, mlflow, sm = world
    name = t.env.names.mlflow.user_secret("ci-bot")
    people.create_user(t, "ci-bot", service_account=True)
    before = sm.get_secret_value(SecretId=name)["SecretString"]
    mlflow.refuse = "update_user_password"
    with pytest.raises(CommandError):
        people.reset_password(t, "ci-bot", service_account=True)
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"] == before
    assert mlflow.users["ci-bot"] == before
    mlflow.refuse = ""
    people.reset_password(t, "ci-bot", service_account=True)
    after = sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"]
    assert after != before and mlflow.users["ci-bot"] == after


def test_admin_rotation_resumes_where_it_stopped(world: Any) -> None:
    """Interrupted after MLflow took the new password but before the secret was switched: the run
    again finds the pending value, sees MLflow take it, and finishes."""
    t, mlflow, sm = world
    secret = t.env.names.mlflow.admin_password_secret
    pending = sm.put_secret_value(
        SecretId=secret, SecretString="admin-password-2", VersionStages=["AWSPENDING"]
    )
    mlflow.admin_password = "admin-password-2"  # the interrupted run got this far
    people.rotate_admin(t)
    assert (
        sm.get_secret_value(SecretId=secret, VersionStage="AWSCURRENT")["VersionId"] == pending["VersionId"]
    )
    assert mlflow.admin_password == "admin-password-2"


def test_admin_rotation_refuses_when_mlflow_takes_neither(world: Any) -> None:
    t, mlflow, _ = world
    mlflow.admin_password = "set-by-hand-elsewhere"
    with pytest.raises(CommandError, match="neither the current nor the pending"):
        people.rotate_admin(t)


def test_grant_replaces_an_earlier_grant(world: Any) -> None:
    t, mlflow, _ = world
    assert people.grant(t, "bob", "exp", None, "READ") == "bob: READ on experiment 7"
    assert "replaced" in people.grant(t, "bob", "exp", None, "EDIT")
    assert mlflow.grants == {("bob", "experiment", "7"): "EDIT"}
    people.revoke(t, "bob", None, "model-a")
    with pytest.raises(UsageError, match="exactly one"):
        people.grant(t, "bob", "exp", "model-a", "READ")
