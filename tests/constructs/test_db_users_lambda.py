"""The database-user Lambda handler: what it accepts, the SQL it runs, what it returns. Its run
against a real server (twice, then after a rotation) is the boot rehearsal's."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from constructs_lib.db_users_lambda import handler
from constructs_lib.db_users_lambda.handler import (
    IAM_AUTHENTICATION,
    PRIVILEGES,
    Credentials,
    EventError,
    Request,
)

EVENT: dict[str, Any] = {
    "secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1234",
    "host": "mlopspltf-dev-mlflow.abc123.eu-west-1.rds.amazonaws.com",
    "port": 3306,
    "databases": ["mlflow", "mlflow_auth"],
    "user": "mlflow",
    "region": "eu-west-1",
    "secrets": ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:admin-AbCdEf"],
    "redis": None,
}
MASTER = Credentials("mlflow_admin", "s3cr3t-master-password")
PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_a_valid_event_is_taken_as_is() -> None:
    assert Request.of(EVENT) == Request(
        secret_arn=EVENT["secret_arn"],
        host=EVENT["host"],
        port=3306,
        databases=("mlflow", "mlflow_auth"),
        user="mlflow",
        region="eu-west-1",
        secrets=tuple(EVENT["secrets"]),
        redis=None,
    )
    redis = {"replication_group_id": "mlopspltf-prd-mlflow", "secret_arn": EVENT["secrets"][0]}
    assert Request.of({**EVENT, "redis": redis}).redis == handler.Redis(**redis)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"user": "x'@'%' IDENTIFIED BY 'pw"}, r"user: .* is not a user name"),
        ({"user": "m" * 33}, "user: .* is not a user name"),
        ({"user": "1mlflow"}, "user: .* is not a user name"),
        ({"user": "root"}, "user: 'root' is reserved for the engine or RDS"),
        ({"user": "rdsadmin"}, "user: 'rdsadmin' is reserved"),
        ({"databases": ["mlflow`; DROP DATABASE mysql; --"]}, "databases: .* not a database name"),
        ({"databases": ["Information_Schema"]}, "databases: .*'Information_Schema': a system schema"),
        ({"databases": ["mlflow", "mysql"]}, "databases: .*'mysql': a system schema"),
        ({"databases": []}, "databases: .* not a list of 1-4 distinct database names"),
        ({"databases": "mlflow"}, "databases: .* not a list of 1-4 distinct database names"),
        ({"databases": ["mlflow", "mlflow"]}, "databases: .* not a list of 1-4 distinct database names"),
        ({"secrets": ["rds!db-1234"]}, "secrets: .* is not a list of Secrets Manager ARNs"),
        ({"redis": {"replication_group_id": "x"}}, "redis: .* is not null or"),
        (
            {"redis": {"replication_group_id": "Bad_Id", "secret_arn": EVENT["secrets"][0]}},
            "redis: .* is not null or",
        ),
        ({"port": "3306"}, "port: '3306' is not a port number"),
        ({"port": True}, "port: True is not a port number"),
        ({"port": 70000}, "port: 70000 is not a port number"),
        ({"host": "db.example.com;rm"}, "host: .* is not a host name"),
        ({"region": "eu-west"}, "region: 'eu-west' is not an AWS region"),
        ({"secret_arn": "rds!db-1234"}, "secret_arn: .* is not a Secrets Manager ARN"),
    ],
)
def test_identifiers_are_validated_before_any_sql(change: dict[str, object], message: str) -> None:
    with pytest.raises(EventError, match=f"^event: {message}"):
        Request.of({**EVENT, **change})


def test_no_redis_key_means_no_cache() -> None:
    """Terraform's jsonencode drops a null member: the stack without a cache sends no "redis"."""
    assert Request.of({k: v for k, v in EVENT.items() if k != "redis"}).redis is None


def test_missing_and_unknown_keys_are_named() -> None:
    event = {k: v for k, v in EVENT.items() if k != "port"} | {"password": "x"}
    with pytest.raises(EventError, match=r"^event: port: missing; password: not expected$"):
        Request.of(event)
    with pytest.raises(EventError, match="expected an object"):
        Request.of(["mlflow"])


def test_statements_create_the_databases_and_an_iam_user_with_the_grants() -> None:
    privileges = "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, REFERENCES, TRIGGER"
    assert handler.statements("mlflow", ("mlflow", "mlflow_auth"), IAM_AUTHENTICATION) == [
        "CREATE DATABASE IF NOT EXISTS `mlflow` CHARACTER SET utf8mb4",
        "CREATE DATABASE IF NOT EXISTS `mlflow_auth` CHARACTER SET utf8mb4",
        "CREATE USER IF NOT EXISTS 'mlflow'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL",
        "ALTER USER 'mlflow'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL",
        f"GRANT {privileges} ON `mlflow`.* TO 'mlflow'@'%'",
        f"GRANT {privileges} ON `mlflow\\_auth`.* TO 'mlflow'@'%'",
    ]


def test_the_grant_names_one_database_not_a_pattern() -> None:
    # "_" is a wildcard in a database-level GRANT: mlflow_race would also match mlflowXrace.
    grant = handler.statements("mlflow", ("mlflow_race",), IAM_AUTHENTICATION)[-1]
    assert " ON `mlflow\\_race`.* " in grant
    assert "DROP" not in PRIVILEGES and "ALL" not in PRIVILEGES


class FakeConnection:
    def __init__(self, grants: list[str], fail_on: str = "") -> None:
        self.executed: list[str] = []
        self.closed = False
        self.grants = grants
        self.fail_on = fail_on

    def cursor(self) -> FakeConnection:
        return self

    def __enter__(self) -> FakeConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, sql: str) -> None:
        if self.fail_on and sql.startswith(self.fail_on):
            raise RuntimeError(f"refused: {sql}")
        self.executed.append(sql)

    def fetchall(self) -> list[tuple[str]]:
        return [(g,) for g in self.grants]

    def close(self) -> None:
        self.closed = True


def fake_pymysql(monkeypatch: pytest.MonkeyPatch, connection: FakeConnection) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def connect(**kwargs: Any) -> FakeConnection:
        calls.append(kwargs)
        return connection

    monkeypatch.setattr("pymysql.connect", connect)
    return calls


def test_provision_connects_as_the_master_over_verified_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    grants = ["GRANT USAGE ON *.* TO `mlflow`@`%` REQUIRE SSL", "GRANT SELECT ON `mlflow`.* TO `mlflow`@`%`"]
    conn = FakeConnection(grants)
    calls = fake_pymysql(monkeypatch, conn)
    result = handler.provision(Request.of(EVENT), MASTER, Path("/tmp/ca.pem"), IAM_AUTHENTICATION)
    (call,) = calls
    assert (call["host"], call["port"], call["user"], call["password"]) == (
        EVENT["host"],
        3306,
        "mlflow_admin",
        MASTER.password,
    )
    assert call["ssl"] == {"ca": "/tmp/ca.pem"}
    assert conn.executed == [
        *handler.statements("mlflow", ("mlflow", "mlflow_auth"), IAM_AUTHENTICATION),
        "SHOW GRANTS FOR 'mlflow'@'%'",
    ]
    assert result == {"user": "mlflow", "databases": ["mlflow", "mlflow_auth"], "grants": grants}
    assert conn.closed


def test_provision_closes_the_connection_when_a_statement_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = FakeConnection([], fail_on="GRANT")
    fake_pymysql(monkeypatch, conn)
    with pytest.raises(RuntimeError, match="refused: GRANT"):
        handler.provision(Request.of(EVENT), MASTER, Path("/tmp/ca.pem"), IAM_AUTHENTICATION)
    assert conn.closed


def test_the_master_user_is_never_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_pymysql(monkeypatch, FakeConnection([]))
    with pytest.raises(EventError, match="user: 'MLFLOW_ADMIN' is the master user"):
        handler.provision(
            Request.of({**EVENT, "user": "MLFLOW_ADMIN"}), MASTER, Path("/tmp/ca.pem"), IAM_AUTHENTICATION
        )
    assert calls == []


def test_the_ca_bundle_is_downloaded_once_over_verified_https(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    opened: list[tuple[str, ssl.SSLContext]] = []

    class Response:
        def __init__(self, body: bytes) -> None:
            self.body = body

        def __enter__(self) -> Response:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def read(self) -> bytes:
            return self.body

    def urlopen(url: str, timeout: float, context: ssl.SSLContext) -> Response:
        opened.append((url, context))
        return Response(PEM if "eu-west-1" in url else b"<html>not found</html>")

    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    first = handler.rds_ca_bundle("eu-west-1", tmp_path)
    assert handler.rds_ca_bundle("eu-west-1", tmp_path) == first  # a warm Lambda reuses it
    assert first.read_bytes() == PEM
    (url, context), *_ = opened
    assert len(opened) == 1
    assert url == "https://truststore.pki.rds.amazonaws.com/eu-west-1/eu-west-1-bundle.pem"
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(RuntimeError, match="no PEM certificate"):
        handler.rds_ca_bundle("us-east-1", tmp_path)
    assert not (tmp_path / "us-east-1-bundle.pem").exists()


def test_handler_reads_the_master_secret_and_returns_no_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Against moto's Secrets Manager: the master secret is read, the empty sign-in secret gets a
    generated value, and the result (stored in the Terraform state) holds neither."""
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="eu-west-1")
        master = sm.create_secret(
            Name="rds!db-1234",
            SecretString=json.dumps({"username": MASTER.username, "password": MASTER.password}),
        )["ARN"]
        empty = sm.create_secret(Name="mlopspltf-dev-mlflow-admin-password")["ARN"]
        monkeypatch.setattr(handler, "CA_DIRECTORY", tmp_path)
        (tmp_path / "eu-west-1-bundle.pem").write_bytes(PEM)
        calls = fake_pymysql(monkeypatch, FakeConnection(["GRANT USAGE ON *.* TO `mlflow`@`%`"]))
        result = handler.handler({**EVENT, "secret_arn": master, "secrets": [empty]}, None)
        generated = sm.get_secret_value(SecretId=empty)["SecretString"]
    assert calls[0]["password"] == MASTER.password and calls[0]["ssl"] == {
        "ca": str(tmp_path / "eu-west-1-bundle.pem")
    }
    assert result["secrets"] == {empty: "generated"}
    assert len(generated) == 64 and generated.isalnum()
    for value in (MASTER.password, generated):
        assert value not in json.dumps(result)
    assert MASTER.password not in repr(MASTER)
