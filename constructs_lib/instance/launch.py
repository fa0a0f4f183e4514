"""Start MLflow, with sign-in, from the settings read at every start (rendered into the boot script
by constructs_lib/user_data.py, which fills in the marked values at synthesis).

It logs in to both databases as the db_user setting with IAM tokens (mlflow_rds_iam), never with
the master password. Before MLflow starts, under one database lock shared by every instance, an
empty database gets its schema and one that holds a schema is only verified (mlflow_schemas):
another release's schema stops this start with one line, tells the auto scaling group at once
that the instance is unhealthy, and exits 3, which systemd does not restart.

Secrets come from Secrets Manager, each only where it is needed: the admin's password only while
the sign-in database has no admin yet (this launcher creates it with MLflow's own
create_admin_user, so the server never holds it), the Flask secret key (the same on every
instance) and, with the cache, the Redis token.
"""

import json
import os
import sys
import urllib.parse
import urllib.request

import boto3
import mlflow_schemas
import sqlalchemy as sa

REGION = "@@REGION@@"
ENVIRONMENT = "@@ENVIRONMENT@@"
PARAMETER_PATH = "@@PARAMETER_PATH@@"
AUTOSCALING_GROUP = "@@AUTOSCALING_GROUP@@"
CACHE_ENABLED = "@@CACHE_ENABLED@@" == "true"  # type: ignore[comparison-overlap]
EXTRA_ALLOWED_HOSTS = [h for h in "@@EXTRA_ALLOWED_HOSTS@@".split(",") if h]
ADMIN_USERNAME = "@@ADMIN_USERNAME@@"
DEFAULT_PERMISSION = "@@DEFAULT_PERMISSION@@"
PYTHON = "/opt/mlflow/venv/bin/python"
AUTH_CONFIG = "/opt/mlflow/basic_auth.ini"
UPGRADE_COMMAND = f"python -m ops mlflow upgrade --env {ENVIRONMENT}"
# A verified sign-in is remembered this long per worker process. Without it MLflow checks the
# password (scrypt, ~0.2 s of CPU) 2 to 6 times per request. The price: a changed or deleted
# password is still accepted for up to this long by the workers that did not handle the change.
AUTH_CACHE_SECONDS = 30
# A worker's gate may allow a request on the user's grants as read up to this long ago; a refusal
# is always decided on fresh grants. The price: a revoked grant still allows for up to this long on
# the workers that did not handle the revocation (docs/stacks/mlflow.md, "What sign-in costs").
GRANT_CACHE_SECONDS = 10

ssm = boto3.client("ssm", region_name=REGION)
secretsmanager = boto3.client("secretsmanager", region_name=REGION)


def param(name: str) -> str:
    value: str = ssm.get_parameter(Name=PARAMETER_PATH + "/" + name)["Parameter"]["Value"]
    return value


def secret(setting: str) -> str:
    arn = param(setting)
    value: str = secretsmanager.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]
    return value


def quoted(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def database_uri(name: str) -> str:
    # No password: the rds_iam plugin signs a token for each new connection of every process.
    return (
        f"mysql+pymysql://{quoted(db_user)}@{db_host}:{db_port}/{name}"
        f"?ssl_ca=/opt/mlflow/rds-ca.pem&plugin=rds_iam&rds_iam_region={REGION}"
    )


def report_unhealthy(reason: str) -> None:
    """Mark this instance unhealthy in its auto scaling group now, instead of after the load
    balancer's failed health checks: an instance refresh stops and rolls back at once."""
    try:
        imds = os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254").rstrip("/")
        put = urllib.request.Request(
            imds + "/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        )
        with urllib.request.urlopen(put, timeout=5) as response:
            imds_token = response.read().decode()
        get = urllib.request.Request(
            imds + "/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": imds_token}
        )
        with urllib.request.urlopen(get, timeout=5) as response:
            instance_id = response.read().decode()
        boto3.client("autoscaling", region_name=REGION).set_instance_health(
            InstanceId=instance_id, HealthStatus="Unhealthy", ShouldRespectGracePeriod=False
        )
        print(
            f"reported {instance_id} unhealthy to {AUTOSCALING_GROUP}: {reason}", file=sys.stderr, flush=True
        )
    except Exception as exc:  # the exit below still stops the start
        print(f"could not report the instance unhealthy: {exc}", file=sys.stderr, flush=True)


# Host and port from their own parameters, once each (RDS's "endpoint" already holds the port).
db_host, db_port, db_user = param("db_host"), int(param("db_port")), param("db_user")
tracking_uri, auth_uri = database_uri(param("db_name")), database_uri(param("db_auth_name"))
try:
    done, admin_exists = mlflow_schemas.boot(
        sa.create_engine(tracking_uri, poolclass=sa.pool.NullPool),
        sa.create_engine(auth_uri, poolclass=sa.pool.NullPool),
        UPGRADE_COMMAND,
        ADMIN_USERNAME,
    )
except mlflow_schemas.SchemaMismatchError as exc:
    print(f"error: {exc}", file=sys.stderr, flush=True)
    report_unhealthy(str(exc))
    sys.exit(mlflow_schemas.MISMATCH_EXIT)
print(done, flush=True)

env = dict(os.environ)
# MLflow sends usage telemetry by default (mlflow/environment_variables.py).
env["MLFLOW_DISABLE_TELEMETRY"] = "true"
env["MLFLOW_BACKEND_STORE_URI"] = tracking_uri
# The sign-in app's settings (mlflow/server/auth/config.py); no secret in them. MLflow reads the
# file with configparser's interpolation: a % is written %%.
auth_settings = {
    "default_permission": DEFAULT_PERMISSION,
    "database_uri": auth_uri,
    "admin_username": ADMIN_USERNAME,
    "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    "auth_cache_ttl_seconds": str(AUTH_CACHE_SECONDS),
}
with open(AUTH_CONFIG, "w") as f:
    f.write("[mlflow]\n" + "".join(f"{k} = {v.replace('%', '%%')}\n" for k, v in auth_settings.items()))
env["MLFLOW_AUTH_CONFIG_PATH"] = os.environ["MLFLOW_AUTH_CONFIG_PATH"] = AUTH_CONFIG
env["MLFLOW_SIGNIN_GRANT_CACHE_SECONDS"] = str(GRANT_CACHE_SECONDS)
if not admin_exists:
    # MLflow's own bootstrap (validation, races between instances), run here: the server's
    # processes then never hold the admin's password (mlflow/server/auth/__init__.py).
    from mlflow.server.auth import create_admin_user, store

    store.init_db(auth_uri)
    create_admin_user(ADMIN_USERNAME, secret("admin_password_secret_arn"))
    # (Instances starting together may all get here: MLflow's function creates the user once.)
    print(f"MLflow administrator {ADMIN_USERNAME} ensured", flush=True)
env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secret("flask_secret_key_secret_arn")
if CACHE_ENABLED:
    redis_token = secret("redis_auth_secret_arn")
    # What MLflow 3.x reads: the job queue's Huey storage (mlflow/server/jobs/utils.py), one queue
    # shared by every instance.
    env["MLFLOW_SERVER_JOB_HUEY_REDIS_URL"] = "rediss://:{}@{}:{}/0".format(
        quoted(redis_token), param("redis_host"), param("redis_port")
    )
else:
    # Without a shared queue each instance would keep its jobs in a local file that an instance
    # refresh throws away; the job workers also cost memory (docs/decisions/redis.md).
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
public_hosts = [*EXTRA_ALLOWED_HOSTS, param("alb_dns_name")]
allowed_hosts = [*public_hosts, "localhost", "127.0.0.1"]
# Browsers send Origin on every POST; MLflow refuses origins it does not list (but localhost).
cors_origins = [f"https://{host}" for host in public_hosts]
print(json.dumps({"allowed_hosts": allowed_hosts}), flush=True)
# `mlflow server` through mlflow_signin, whose basic-auth app skips two repeated per-request lookups.
os.execve(
    PYTHON,
    [
        PYTHON, "-m", "mlflow_signin", "server",
        "--app-name", "basic-auth",
        "--artifacts-destination", param("artifacts_destination"),
        "--serve-artifacts",
        "--host", "127.0.0.1",
        "--port", "@@MLFLOW_PORT@@",
        "--workers", "@@WORKERS@@",
        "--allowed-hosts", ",".join(allowed_hosts),
        "--cors-allowed-origins", ",".join(cors_origins),
    ],
    env,
)  # fmt: skip
