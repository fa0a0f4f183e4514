"""The rehearsal's token verifier accepts what botocore signs and refuses what RDS would refuse,
through the same interface PAM uses (token on stdin, user in PAM_USER, exit status)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from rehearsal import iam_token
from rehearsal.iam_token import Endpoint, check, sign

ENDPOINT = Endpoint("127.0.0.1", 3306, "eu-west-1")
KEYS = {"AKIAREHEARSAL": "rehearsal-secret"}


def boto3_token(user: str = "mlflow", port: int = 3306, region: str = "eu-west-1", secret: str = "") -> str:
    client = boto3.client(
        "rds",
        region_name=region,
        aws_access_key_id="AKIAREHEARSAL",
        aws_secret_access_key=secret or KEYS["AKIAREHEARSAL"],
    )
    token: str = client.generate_db_auth_token("127.0.0.1", port, user, region)
    return token


def flip_last(token: str) -> str:
    return token[:-1] + ("0" if token[-1] != "0" else "1")


def signed_at(token: str) -> datetime:
    return datetime.strptime(token.split("X-Amz-Date=")[1][:16], iam_token.DATE).replace(tzinfo=UTC)


def test_a_boto3_token_is_accepted_while_it_lives() -> None:
    token = boto3_token()
    verdict = check(token, "mlflow", ENDPOINT, KEYS, signed_at(token) + timedelta(seconds=899))
    assert verdict.accepted and verdict.age_seconds == 899


def test_sign_makes_the_token_botocore_makes() -> None:
    token = boto3_token()
    assert sign(ENDPOINT, "mlflow", "AKIAREHEARSAL", KEYS["AKIAREHEARSAL"], signed_at(token)) == token


@pytest.mark.parametrize(
    ("token", "user", "refusal", "reason"),
    [
        (boto3_token().replace("DBUser=mlflow", "DBUser=mlflox"), "mlflox", "bad-signature", "signature"),
        (flip_last(boto3_token()), "mlflow", "bad-signature", "signature"),
        (boto3_token(secret="another-secret"), "mlflow", "bad-signature", "signature does not match"),
        (boto3_token("mlflow_admin"), "mlflow", "other-user", "signed for database user 'mlflow_admin'"),
        (boto3_token(port=3307), "mlflow", "other-endpoint", "not for this database"),
        (boto3_token(region="us-east-1"), "mlflow", "other-endpoint", "credential scope"),
        ("s3cr3t-password", "mlflow", "not-a-token", "not for this database"),
        (boto3_token() + "&X-Amz-Security-Token=abc", "mlflow", "not-a-token", "X-Amz-Security-Token"),
        (boto3_token() + "x" * 300, "mlflow", "too-long", "cut short by pam_exec"),
    ],
)
def test_tampered_foreign_and_malformed_tokens_are_refused(
    token: str, user: str, refusal: str, reason: str
) -> None:
    verdict = check(token, user, ENDPOINT, KEYS, datetime.now(UTC))
    assert (verdict.accepted, verdict.refusal) == (False, refusal)
    assert reason in verdict.reason


def test_expired_and_future_tokens_are_refused() -> None:
    now = datetime.now(UTC)
    expired = sign(ENDPOINT, "mlflow", "AKIAREHEARSAL", KEYS["AKIAREHEARSAL"], now - timedelta(seconds=901))
    assert check(expired, "mlflow", ENDPOINT, KEYS, now).refusal == "expired"
    future = sign(ENDPOINT, "mlflow", "AKIAREHEARSAL", KEYS["AKIAREHEARSAL"], now + timedelta(minutes=10))
    assert check(future, "mlflow", ENDPOINT, KEYS, now).refusal == "future"
    assert check(boto3_token(), "mlflow", ENDPOINT, {"AKIAOTHER": "x"}, now).refusal == "unknown-key"


def test_pam_interface_exit_status_and_log(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    config = tmp_path / "verifier.json"
    config.write_text(json.dumps({"host": "127.0.0.1", "port": 3306, "region": "eu-west-1",
                                  "credentials": KEYS, "log": str(log)}))  # fmt: skip

    def run(token: str, user: str) -> int:
        done = subprocess.run(
            [sys.executable, "-I", iam_token.__file__, str(config)],
            input=token.encode() + b"\0",  # pam_exec may end the token with a NUL
            env={"PAM_USER": user},  # PAM's environment: nothing else
            capture_output=True,
            timeout=30,
            check=False,
        )
        return done.returncode

    assert run(boto3_token(), "mlflow") == 0
    assert run(boto3_token(), "mlflow_admin") == 1
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert (first["user"], first["accepted"], first["refusal"]) == ("mlflow", True, "")
    assert (second["user"], second["accepted"], second["refusal"]) == ("mlflow_admin", False, "other-user")
