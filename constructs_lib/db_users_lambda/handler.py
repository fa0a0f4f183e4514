"""The MLflow stack's provisioning Lambda: MLflow's own least-privilege database user, its
databases, and the secrets Terraform must never see.

Terraform invokes it (``aws_lambda_invocation``) once the RDS instance (and the cache) exist, with
the event ``{"secret_arn", "host", "port", "databases", "user", "region", "secrets", "redis"}``.

1. The database user. It reads the RDS-managed master secret, connects over TLS (verifying the
   certificate against RDS's regional CA bundle) and runs, each time, statements that leave the
   same result however often they run:

   - ``CREATE DATABASE IF NOT EXISTS `<database>``` for each database (the first one RDS created);
   - ``CREATE USER IF NOT EXISTS '<user>'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL``
   - the same as ``ALTER USER``: a user that already existed (say, created by hand with a password)
     converges to IAM authentication over TLS;
   - ``GRANT <PRIVILEGES> ON `<database>`.* TO '<user>'@'%'`` for each database.

2. The generated secrets (``secrets.py``): every secret of ``secrets`` without a value gets one
   from Secrets Manager's ``GetRandomPassword``, and, with ``redis``, the Redis AUTH token is
   generated and set on the replication group. Nothing generated passes through Terraform.

It returns the user, the databases, ``SHOW GRANTS`` and what happened to each secret (by ARN),
never a secret's value: an ``aws_lambda_invocation``'s result is stored in the state. The
instances then log in with IAM tokens (``rds-db:connect``) and never read the master secret.

Standard library, boto3 and PyMySQL only. The boot rehearsal runs ``provision`` and the secrets
step itself, with the rehearsal's CA file, MariaDB's authentication clause and a stand-in for
ElastiCache's API over the local Redis (rehearsal/substitutions.py says why).
"""

from __future__ import annotations

import json
import re
import ssl
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pymysql

try:  # packaged flat in the Lambda's zip, a package in the repository (tests, the rehearsal)
    import generated_secrets  # type: ignore[import-not-found, unused-ignore]
except ImportError:
    from constructs_lib.db_users_lambda import generated_secrets

# What MLflow needs on its own database, and nothing else: its schema creation and migrations
# (tables, columns, indexes, foreign keys, the trigger guarding the `secrets` table; rows deleted
# when a populated database is migrated) and the server's reads, writes and deletions. No DROP:
# no migration of MLflow 3.17.2 drops or renames a table on the way up. The boot rehearsal records
# every statement MLflow sends and checks that each of these is used and nothing else is needed.
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "INDEX", "REFERENCES", "TRIGGER")
IAM_AUTHENTICATION = "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'"
CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/{region}/{region}-bundle.pem"
CA_DIRECTORY = Path("/tmp")  # the only writable path of a Lambda; kept while the Lambda stays warm
CONNECT_TIMEOUT_SECONDS = 10
KEYS = ("secret_arn", "host", "port", "databases", "user", "region", "secrets")
# Terraform's jsonencode leaves out a null member: absent means null.
OPTIONAL_KEYS = ("redis",)
MAX_DATABASES = 4

# Account names and database names go into the SQL text (they cannot be bound parameters), so
# only plain identifiers pass: MySQL allows user names up to 32 characters, database names up to 64.
USER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
DATABASE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]")
HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
# ElastiCache replication group ids: lowercase letters, digits and hyphens, at most 40.
GROUP = re.compile(r"[a-z][a-z0-9-]{0,39}")
# Accounts and schemas the user must never be: the engine's and RDS's own.
RESERVED_USERS = frozenset({"root", "rdsadmin", "rdsrepladmin", "rdsproxyadmin", "mysql"})
SYSTEM_DATABASES = frozenset({"mysql", "sys", "information_schema", "performance_schema"})


class EventError(ValueError):
    """The event cannot be acted on; the message names the key."""


@dataclass(frozen=True)
class Redis:
    replication_group_id: str
    secret_arn: str


@dataclass(frozen=True)
class Request:
    secret_arn: str
    host: str
    port: int
    databases: tuple[str, ...]
    user: str
    region: str
    secrets: tuple[str, ...] = ()
    redis: Redis | None = None

    @classmethod
    def of(cls, event: object) -> Request:
        if not isinstance(event, dict):
            raise EventError(f"event: expected an object with {', '.join(KEYS)}, got {type(event).__name__}")
        problems = [f"{key}: missing" for key in KEYS if key not in event]
        problems += [f"{key}: not expected" for key in sorted(set(event) - set(KEYS) - set(OPTIONAL_KEYS))]
        if problems:
            raise EventError("event: " + "; ".join(problems))
        event = {"redis": None, **event}
        port, databases, secrets, redis = event["port"], event["databases"], event["secrets"], event["redis"]
        listed = isinstance(databases, list) and 0 < len(databases) <= MAX_DATABASES
        names = databases if listed else []
        checks = (
            ("secret_arn", _is_arn(event["secret_arn"]), "not a Secrets Manager ARN"),
            ("host", _matches(HOST, event["host"]), "not a host name"),
            ("port", isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536,
             "not a port number (an integer, 1-65535)"),
            ("databases", listed and len(set(names)) == len(names),
             f"not a list of 1-{MAX_DATABASES} distinct database names"),
            *(("databases", _matches(DATABASE, d),
               f"{d!r}: not a database name (a letter, then letters, digits or _; at most 64)") for d in names),
            *(("databases", str(d).lower() not in SYSTEM_DATABASES, f"{d!r}: a system schema") for d in names),
            ("user", _matches(USER, event["user"]),
             "not a user name (a letter, then letters, digits or _; at most 32)"),
            ("user", str(event["user"]).lower() not in RESERVED_USERS, "reserved for the engine or RDS"),
            ("region", _matches(REGION, event["region"]), "not an AWS region"),
            ("secrets", isinstance(secrets, list) and all(_is_arn(a) for a in secrets),
             "not a list of Secrets Manager ARNs"),
            ("redis", redis is None or (isinstance(redis, dict) and set(redis) == {"replication_group_id", "secret_arn"}
                                        and _matches(GROUP, redis["replication_group_id"])
                                        and _is_arn(redis["secret_arn"])),
             "not null or {replication_group_id, secret_arn}"),
        )  # fmt: skip
        if bad := [f"{key}: {event[key]!r} is {what}" for key, ok, what in checks if not ok]:
            raise EventError("event: " + "; ".join(bad))
        return cls(
            secret_arn=event["secret_arn"],
            host=event["host"],
            port=port,
            databases=tuple(databases),
            user=event["user"],
            region=event["region"],
            secrets=tuple(secrets),
            redis=Redis(**redis) if redis else None,
        )


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)  # never in a log line or a traceback


def _matches(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _is_arn(value: object) -> bool:
    return isinstance(value, str) and value.startswith("arn:") and ":secretsmanager:" in value


def statements(user: str, databases: tuple[str, ...], authentication: str) -> list[str]:
    """The SQL that creates the databases and creates or converges the user; ``user`` and
    ``databases`` must be validated."""
    account = f"'{user}'@'%'"
    # In a database-level GRANT, _ and % are wildcards: escaped, it names this database only.
    scopes = ["`" + database.replace("_", "\\_") + "`.*" for database in databases]
    return [
        *(f"CREATE DATABASE IF NOT EXISTS `{d}` CHARACTER SET utf8mb4" for d in databases),
        f"CREATE USER IF NOT EXISTS {account} {authentication} REQUIRE SSL",
        f"ALTER USER {account} {authentication} REQUIRE SSL",
        *(f"GRANT {', '.join(PRIVILEGES)} ON {scope} TO {account}" for scope in scopes),
    ]


def master_credentials(secretsmanager: Any, secret_arn: str) -> Credentials:
    """The master user's name and current password from the RDS-managed secret."""
    value = json.loads(secretsmanager.get_secret_value(SecretId=secret_arn)["SecretString"])
    return Credentials(value["username"], value["password"])


def rds_ca_bundle(region: str, directory: Path) -> Path:
    """RDS's CA bundle for ``region``, downloaded over verified HTTPS once per warm Lambda."""
    path = directory / f"{region}-bundle.pem"
    if not path.exists():
        url = CA_BUNDLE_URL.format(region=region)
        with urllib.request.urlopen(url, timeout=30, context=ssl.create_default_context()) as response:
            bundle: bytes = response.read()
        if b"-----BEGIN CERTIFICATE-----" not in bundle:
            raise RuntimeError(f"{url}: no PEM certificate in the response")
        partial = path.with_suffix(".part")
        partial.write_bytes(bundle)
        partial.replace(path)  # a concurrent invocation never reads half a file
    return path


def provision(request: Request, master: Credentials, ca_bundle: Path, authentication: str) -> dict[str, Any]:
    """Create the databases, create or converge ``request.user`` and its grants, as ``master``;
    what SHOW GRANTS says."""
    if request.user.lower() == master.username.lower():
        raise EventError(f"event: user: {request.user!r} is the master user")
    connection = pymysql.connect(
        host=request.host,
        port=request.port,
        user=master.username,
        password=master.password,
        ssl={"ca": str(ca_bundle)},  # verifies the certificate and the host name
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        autocommit=True,
    )
    try:
        with connection.cursor() as cursor:
            for statement in statements(request.user, request.databases, authentication):
                cursor.execute(statement)
            cursor.execute(f"SHOW GRANTS FOR '{request.user}'@'%'")
            grants = [row[0] for row in cursor.fetchall()]
    finally:
        connection.close()
    return {"user": request.user, "databases": list(request.databases), "grants": grants}


def handler(event: object, context: object) -> dict[str, Any]:
    request = Request.of(event)
    secretsmanager = boto3.client("secretsmanager", region_name=request.region)
    master = master_credentials(secretsmanager, request.secret_arn)
    result = provision(request, master, rds_ca_bundle(request.region, CA_DIRECTORY), IAM_AUTHENTICATION)
    elasticache = boto3.client("elasticache", region_name=request.region) if request.redis else None
    redis = (request.redis.replication_group_id, request.redis.secret_arn) if request.redis else None
    return {
        **result,
        "secrets": generated_secrets.provision(request.secrets, redis, secretsmanager, elasticache),
    }
