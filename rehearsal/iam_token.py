"""RDS IAM authentication tokens, checked as RDS checks them, for the rehearsal's MariaDB.

A token is a SigV4 presigned ``GET https://<host>:<port>/?Action=connect&DBUser=<user>`` for the
service ``rds-db``, valid 15 minutes, without its scheme (botocore's ``generate_db_auth_token``).
MariaDB's auth_pam plugin, loaded with ``pam_use_cleartext_plugin=ON``, asks the client for
``mysql_clear_password`` exactly as RDS does and hands the password to PAM; the rehearsal's PAM
service (rehearsal/servers.py) runs this file through ``pam_exec.so expose_authtok``, with the
token on standard input and the database user in ``PAM_USER``::

    python3 -I iam_token.py CONFIG.json    # exit 0: accepted; 1: refused

CONFIG is ``{"host", "port", "region", "credentials": {access key id: secret key}, "log"}``. The
signature is recomputed with the secret key of the token's access key (the credentials the
rehearsal's instances use); each decision is appended to ``log`` as one JSON line. Standard library
only: PAM starts it with an empty environment.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "rds-db"
DATE = "%Y%m%dT%H%M%SZ"
LIFETIME_SECONDS = 900  # RDS accepts a token for 15 minutes
CLOCK_SKEW_SECONDS = 300
# The payload hash of the canonical request: a token's GET has an empty body.
EMPTY_PAYLOAD = hashlib.sha256(b"").hexdigest()
# pam_exec passes at most PAM_MAX_RESP_SIZE - 1 characters: a longer token arrives cut short.
# Tokens signed with long-term keys, as in the rehearsal, are about 300 characters; with a session
# token (an EC2 instance role's) they are longer, which is why only the rehearsal has this limit.
PAM_LIMIT = 511
QUERY_KEYS = frozenset(
    {
        "Action",
        "DBUser",
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    }
)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    region: str


@dataclass(frozen=True)
class Verdict:
    reason: str  # empty when accepted
    refusal: str = ""  # the reason's kind: expired, bad-signature, other-user, ...
    age_seconds: float | None = None  # since the token was signed

    @property
    def accepted(self) -> bool:
        return not self.reason


def _encode(value: str) -> str:
    return urllib.parse.quote(value, safe="-_.~")


def _query(params: dict[str, str]) -> str:
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(params.items()))


def _signature(secret_key: str, endpoint: Endpoint, params: dict[str, str]) -> str:
    """SigV4 over the canonical request of the presigned GET (every parameter but the signature)."""
    amz_date = params["X-Amz-Date"]
    day = amz_date[:8]
    canonical = "\n".join(
        ("GET", "/", _query(params), f"host:{endpoint.host}:{endpoint.port}", "", "host", EMPTY_PAYLOAD)
    )
    scope = f"{day}/{endpoint.region}/{SERVICE}/aws4_request"
    to_sign = "\n".join((ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()))
    key = f"AWS4{secret_key}".encode()
    for part in (day, endpoint.region, SERVICE, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def sign(endpoint: Endpoint, user: str, access_key: str, secret_key: str, now: datetime) -> str:
    """A token as botocore makes it, signed at ``now`` (the harness signs expired ones)."""
    params = {
        "Action": "connect",
        "DBUser": user,
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{access_key}/{now:%Y%m%d}/{endpoint.region}/{SERVICE}/aws4_request",
        "X-Amz-Date": now.strftime(DATE),
        "X-Amz-Expires": str(LIFETIME_SECONDS),
        "X-Amz-SignedHeaders": "host",
    }
    signature = _signature(secret_key, endpoint, params)
    return f"{endpoint.host}:{endpoint.port}/?{_query(params)}&X-Amz-Signature={signature}"


class RefusedError(Exception):
    def __init__(self, refusal: str, reason: str, age_seconds: float | None = None) -> None:
        super().__init__(reason)
        self.refusal = refusal  # a short kind, for counting
        self.age_seconds = age_seconds


def check(token: str, user: str, endpoint: Endpoint, credentials: dict[str, str], now: datetime) -> Verdict:
    """Whether RDS would let ``user`` in with ``token`` at ``now``, and if not, why."""
    try:
        return Verdict("", age_seconds=_verify(token, user, endpoint, credentials, now))
    except RefusedError as refused:
        return Verdict(str(refused), refused.refusal, refused.age_seconds)


def _verify(token: str, user: str, endpoint: Endpoint, credentials: dict[str, str], now: datetime) -> float:
    """The token's age in seconds; RefusedError with the first reason RDS would refuse it for."""
    if len(token) >= PAM_LIMIT:
        raise RefusedError("too-long", f"{len(token)} characters: cut short by pam_exec, cannot be checked")
    prefix = f"{endpoint.host}:{endpoint.port}/?"
    if not token.startswith(prefix):
        kind = "other-endpoint" if "/?Action=" in token else "not-a-token"
        raise RefusedError(kind, f"not for this database ({token.split('/', 1)[0][:60]!r})")
    try:
        pairs = urllib.parse.parse_qsl(token[len(prefix) :], keep_blank_values=True, strict_parsing=True)
        params = dict(pairs)
        signed_at = datetime.strptime(params.get("X-Amz-Date", ""), DATE).replace(tzinfo=UTC)
        expires = int(params.get("X-Amz-Expires", ""))
    except ValueError:
        raise RefusedError("not-a-token", "not a presigned query with a date and an expiry") from None
    if len(params) != len(pairs) or set(params) != QUERY_KEYS:
        raise RefusedError(
            "not-a-token", f"unexpected parameters: {sorted(set(params) ^ QUERY_KEYS) or 'repeated'}"
        )
    if params["Action"] != "connect":
        raise RefusedError("not-a-token", f"action {params['Action']!r}, not connect")
    if params["DBUser"] != user:
        raise RefusedError("other-user", f"signed for database user {params['DBUser']!r}, not {user!r}")
    if params["X-Amz-Algorithm"] != ALGORITHM or params["X-Amz-SignedHeaders"] != "host":
        raise RefusedError("not-a-token", "not a SigV4 signature of the host header")
    access_key, _, scope = params["X-Amz-Credential"].partition("/")
    if scope != f"{signed_at:%Y%m%d}/{endpoint.region}/{SERVICE}/aws4_request":
        raise RefusedError(
            "other-endpoint",
            f"credential scope {scope!r} is not {endpoint.region}/{SERVICE} of the signing day",
        )
    if not 0 < expires <= LIFETIME_SECONDS:
        raise RefusedError(
            "not-a-token", f"X-Amz-Expires={expires}: RDS tokens live at most {LIFETIME_SECONDS} s"
        )
    age = (now - signed_at).total_seconds()
    if age < -CLOCK_SKEW_SECONDS:
        raise RefusedError("future", f"signed {-age:.0f} s in the future", age)
    if age > expires:
        raise RefusedError("expired", f"expired {age - expires:.0f} s ago", age)
    secret_key = credentials.get(access_key)
    if secret_key is None:
        raise RefusedError("unknown-key", f"unknown access key {access_key!r}", age)
    signed = {k: v for k, v in params.items() if k != "X-Amz-Signature"}
    if not hmac.compare_digest(_signature(secret_key, endpoint, signed), params["X-Amz-Signature"]):
        raise RefusedError("bad-signature", "signature does not match", age)
    return age


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text())
    endpoint = Endpoint(config["host"], int(config["port"]), config["region"])
    token = sys.stdin.buffer.read().rstrip(b"\0\n").decode(errors="replace")
    user = os.environ.get("PAM_USER", "")
    verdict = check(token, user, endpoint, config["credentials"], datetime.now(UTC))
    entry = {
        "user": user,
        "accepted": verdict.accepted,
        "reason": verdict.reason,
        "refusal": verdict.refusal,
        "age_seconds": verdict.age_seconds,
    }
    with open(config["log"], "a") as log:  # one short line per write: appends do not interleave
        log.write(json.dumps(entry) + "\n")
    return 0 if verdict.accepted else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
