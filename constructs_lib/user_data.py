"""The MLflow instances' boot script, rendered in Python (no Terraform templating).

The script holds no secret and no Terraform-computed value: every run-time setting (database
host and user, bucket) is read from SSM Parameter Store under the stack's parameter path each time
MLflow starts. The database takes RDS IAM tokens, signed on the instance for each new connection
(the master secret is never read); with the cache, Redis's AUTH token comes from Secrets Manager.
So the rendered text is known at synthesis time, tested as is (``bash -n``), and a change to it
rolls the instances.
"""

from __future__ import annotations

import base64
import re
from dataclasses import asdict, dataclass

PLACEHOLDER = re.compile(r"@@([A-Z0-9_]+)@@")
# Rendered values end up inside shell, Python and JSON strings: nothing that could break out.
SAFE_VALUE = re.compile(r"^[A-Za-z0-9_./:,*=+-]*$")

# One pip constraint: name==version (what `pip freeze` prints).
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*==[A-Za-z0-9][A-Za-z0-9_.+!-]*$")
MLFLOW_PORT = 5000
# What the boot script installs besides MLflow: the database driver, the AWS SDK (settings, IAM
# database tokens, artifacts) and the job queue's Redis client; versions come from the constraints.
INSTALLED = ("mlflow", "pymysql", "boto3", "redis")

# The SSM parameters (under the stack's path) the launcher reads: render() refuses a settings list
# that does not provide exactly these, so the stack's parameters and the script cannot drift apart.
LAUNCHER_SETTINGS = frozenset(
    {"db_host", "db_port", "db_name", "db_user", "artifacts_destination", "alb_dns_name"}
)
CACHE_SETTINGS = frozenset({"redis_host", "redis_port", "redis_auth_secret_arn"})


@dataclass(frozen=True)
class UserDataValues:
    region: str
    environment: str
    parameter_path: str
    mlflow_version: str
    # Every package of the MLflow venv, ``name==version`` (platform_config.mlflow_constraints).
    constraints: tuple[str, ...]
    workers: int
    extra_allowed_hosts: str
    cache_enabled: bool
    log_group_server: str
    log_group_nginx: str
    log_group_system: str
    metrics_namespace: str
    nginx_port: int
    # Names of the stack's instance settings (InstanceSettings.names): checked at boot, in this order.
    parameters: tuple[str, ...]


def render(values: UserDataValues) -> str:
    """The boot script with every ``@@NAME@@`` replaced; raises on a missing or unsafe value."""
    _check_parameters(values)
    _check_constraints(values)
    lists = ("parameters", "constraints")
    mapping = {k.upper(): _text(v) for k, v in asdict(values).items() if k not in lists}
    mapping.update(MLFLOW_PORT=str(MLFLOW_PORT))
    for key, value in mapping.items():
        if not SAFE_VALUE.match(value):
            raise ValueError(f"user data value {key}={value!r} has characters that are unsafe in a script")
    mapping["PARAMETERS"] = " ".join(values.parameters)
    mapping["CONSTRAINTS"] = "\n".join(values.constraints)
    missing = sorted(set(PLACEHOLDER.findall(TEMPLATE)) - set(mapping))
    if missing:
        raise ValueError(f"user data placeholders without a value: {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: mapping[m.group(1)], TEMPLATE)


def _check_parameters(values: UserDataValues) -> None:
    expected = LAUNCHER_SETTINGS | (CACHE_SETTINGS if values.cache_enabled else frozenset())
    given = set(values.parameters)
    problems = []
    if missing := sorted(expected - given):
        problems.append(f"the launcher reads settings that are not set: {', '.join(missing)}")
    if unread := sorted(given - expected):
        problems.append(f"settings nobody reads: {', '.join(unread)}")
    if bad := [name for name in values.parameters if not SAFE_VALUE.match(name)]:
        problems.append(f"unsafe setting names: {', '.join(bad)}")
    if problems:
        raise ValueError("user data: " + "; ".join(problems))


def _check_constraints(values: UserDataValues) -> None:
    if bad := [pin for pin in values.constraints if not PIN.match(pin)]:
        raise ValueError(f"user data: constraints that are not name==version: {', '.join(bad)}")
    names = {pin.split("==")[0].lower().replace("_", "-"): pin for pin in values.constraints}
    if missing := sorted(set(INSTALLED) - set(names)):
        raise ValueError(f"user data: the constraints pin no version of {', '.join(missing)}")
    if names["mlflow"] != f"mlflow=={values.mlflow_version}":
        raise ValueError(
            f"user data: the constraints pin {names['mlflow']}, not mlflow=={values.mlflow_version}"
        )


def encode(script: str) -> str:
    """Launch templates take user data base64-encoded."""
    return base64.b64encode(script.encode()).decode()


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


TEMPLATE = r'''#!/bin/bash
# MLflow server bootstrap for environment @@ENVIRONMENT@@ (rendered by constructs_lib/user_data.py).
# Holds no secret: the launcher reads settings from SSM; the database takes IAM tokens.
set -euo pipefail

REGION="@@REGION@@"
PARAMETER_PATH="@@PARAMETER_PATH@@"

dnf install -y python3.11 python3.11-pip nginx amazon-cloudwatch-agent

id -u mlflow >/dev/null 2>&1 || useradd --system --home-dir /opt/mlflow --shell /sbin/nologin mlflow
install -d -o mlflow -g mlflow -m 0750 /opt/mlflow /var/log/mlflow
python3.11 -m venv /opt/mlflow/venv
# Every package MLflow pulls in is pinned too: a newer dependency can break a pinned MLflow at boot.
cat > /opt/mlflow/constraints.txt <<'PINS'
@@CONSTRAINTS@@
PINS
/opt/mlflow/venv/bin/pip install --no-cache-dir --quiet --constraint /opt/mlflow/constraints.txt \
  "mlflow==@@MLFLOW_VERSION@@" pymysql boto3 redis
# require_secure_transport=ON on the server: the client verifies RDS's certificate with this bundle.
curl -fsSL --retry 5 "https://truststore.pki.rds.amazonaws.com/$REGION/$REGION-bundle.pem" -o /opt/mlflow/rds-ca.pem
chmod 0644 /opt/mlflow/rds-ca.pem

# IAM database authentication: the SQLAlchemy plugin rds_iam, named in the database URI, gives each
# new connection of every MLflow process a fresh token. SQLAlchemy finds plugins by entry point.
SITE=$(/opt/mlflow/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
cat > "$SITE/mlflow_rds_iam.py" <<'IAM'
"""?plugin=rds_iam&rds_iam_region=R: each new connection logs in with a fresh RDS IAM token
(valid 15 minutes; an open connection outlives it)."""

import threading

import boto3
from sqlalchemy import event
from sqlalchemy.engine import CreateEnginePlugin

_lock = threading.Lock()
_clients = {}


def token(host, port, user, region):
    with _lock:
        if region not in _clients:
            _clients[region] = boto3.client("rds", region_name=region)
    return _clients[region].generate_db_auth_token(host, port, user, region)


class RdsIamAuth(CreateEnginePlugin):
    def __init__(self, url, kwargs):
        super().__init__(url, kwargs)
        self.region = url.query["rds_iam_region"]

    def update_url(self, url):
        return url.difference_update_query(["rds_iam_region"])

    def engine_created(self, engine):
        @event.listens_for(engine, "do_connect")
        def fresh_token(dialect, conn_rec, cargs, cparams):
            cparams["password"] = token(cparams["host"], cparams["port"], cparams["user"], self.region)
IAM
install -d "$SITE/mlflow_rds_iam-1.0.dist-info"
cat > "$SITE/mlflow_rds_iam-1.0.dist-info/METADATA" <<'META'
Metadata-Version: 2.1
Name: mlflow-rds-iam
Version: 1.0
META
cat > "$SITE/mlflow_rds_iam-1.0.dist-info/entry_points.txt" <<'ENTRY'
[sqlalchemy.plugins]
rds_iam = mlflow_rds_iam:RdsIamAuth
ENTRY

# Fails early, with a clear message, when the stack's parameters are not readable.
for name in @@PARAMETERS@@; do
  aws ssm get-parameter --region "$REGION" --name "$PARAMETER_PATH/$name" --query Parameter.Name --output text
done

cat > /opt/mlflow/launch.py <<'PY'
"""Start MLflow with the settings read at every start. It logs in to the database as the
db_user setting with IAM tokens (mlflow_rds_iam), never with the master password."""

import os
import urllib.parse

import boto3
from mlflow_rds_iam import token

REGION = "@@REGION@@"
PARAMETER_PATH = "@@PARAMETER_PATH@@"
CACHE_ENABLED = "@@CACHE_ENABLED@@" == "true"
EXTRA_ALLOWED_HOSTS = [h for h in "@@EXTRA_ALLOWED_HOSTS@@".split(",") if h]
MLFLOW = "/opt/mlflow/venv/bin/mlflow"
SCHEMA_LOCK = "mlflow-schema-init"
SCHEMA_LOCK_SECONDS = 600

ssm = boto3.client("ssm", region_name=REGION)


def param(name):
    return ssm.get_parameter(Name=PARAMETER_PATH + "/" + name, WithDecryption=True)["Parameter"]["Value"]


def quoted(value):
    return urllib.parse.quote(value, safe="")


# Host and port from their own parameters, once each (RDS's "endpoint" already holds the port).
db_host, db_port, db_name = param("db_host"), int(param("db_port")), param("db_name")
db_user = param("db_user")
env = dict(os.environ)
# MLflow sends usage telemetry by default (mlflow/environment_variables.py).
env["MLFLOW_DISABLE_TELEMETRY"] = "true"
# No password: the rds_iam plugin signs a token for each new connection of every process.
env["MLFLOW_BACKEND_STORE_URI"] = (
    f"mysql+pymysql://{quoted(db_user)}@{db_host}:{db_port}/{db_name}"
    f"?ssl_ca=/opt/mlflow/rds-ca.pem&plugin=rds_iam&rds_iam_region={REGION}"
)
if CACHE_ENABLED:
    secrets = boto3.client("secretsmanager", region_name=REGION)
    redis_token = secrets.get_secret_value(SecretId=param("redis_auth_secret_arn"))["SecretString"]
    # What MLflow 3.x reads: the job queue's Huey storage (mlflow/server/jobs/utils.py), one queue
    # shared by every instance.
    env["MLFLOW_SERVER_JOB_HUEY_REDIS_URL"] = "rediss://:{}@{}:{}/0".format(
        quoted(redis_token), param("redis_host"), param("redis_port")
    )
else:
    # Without a shared queue each instance would keep its jobs in a local file that an instance
    # refresh throws away; the job workers also cost memory (docs/decisions/redis.md).
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
public_hosts = [param("alb_dns_name"), *EXTRA_ALLOWED_HOSTS]
allowed_hosts = [*public_hosts, "localhost", "127.0.0.1"]
# Browsers send Origin on every POST; MLflow refuses origins it does not list (but localhost).
cors_origins = [f"{scheme}://{host}" for host in public_hosts for scheme in ("https", "http")]


def initialise_schema_once():
    """Create or migrate the schema under a database-wide lock, so instances that start together
    do not race (MLflow's own lock is a file in /tmp, per host); the server then finds it current."""
    import pymysql
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    conn = pymysql.connect(
        host=db_host, port=db_port, user=db_user, password=token(db_host, db_port, db_user, REGION),
        database=db_name, ssl={"ca": "/opt/mlflow/rds-ca.pem"},
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, %s)", (SCHEMA_LOCK, SCHEMA_LOCK_SECONDS))
            if cur.fetchone()[0] != 1:
                raise SystemExit(f"could not take the schema lock within {SCHEMA_LOCK_SECONDS} s")
            SqlAlchemyStore(env["MLFLOW_BACKEND_STORE_URI"], "mlflow-artifacts:/")
            cur.execute("SELECT RELEASE_LOCK(%s)", (SCHEMA_LOCK,))
    finally:
        conn.close()


initialise_schema_once()
os.execve(
    MLFLOW,
    [
        MLFLOW, "server",
        "--artifacts-destination", param("artifacts_destination"),
        "--serve-artifacts",
        "--host", "127.0.0.1",
        "--port", "@@MLFLOW_PORT@@",
        "--workers", "@@WORKERS@@",
        "--allowed-hosts", ",".join(allowed_hosts),
        "--cors-allowed-origins", ",".join(cors_origins),
    ],
    env,
)
PY

cat > /etc/systemd/system/mlflow.service <<'UNIT'
[Unit]
Description=MLflow tracking server and model registry
After=network-online.target
Wants=network-online.target

[Service]
User=mlflow
Group=mlflow
ExecStart=/opt/mlflow/venv/bin/python /opt/mlflow/launch.py
Restart=always
RestartSec=5
StandardOutput=append:/var/log/mlflow/server.log
StandardError=append:/var/log/mlflow/server.log
NoNewPrivileges=true
ProtectSystem=full
PrivateTmp=true

[Install]
WantedBy=multi-user.target
UNIT

cat > /etc/nginx/nginx.conf <<'NGINX'
user nginx;
worker_processes auto;
error_log /var/log/nginx/error.log warn;
pid /run/nginx.pid;

events {
    worker_connections 1024;
}

http {
    log_format main '$remote_addr - $http_x_forwarded_for [$time_local] "$request" $status '
                    '$body_bytes_sent $request_time "$http_user_agent"';
    access_log /var/log/nginx/access.log main;
    server_tokens off;

    server {
        listen @@NGINX_PORT@@ default_server;
        server_name _;
        # Artifacts are uploaded through the server (--serve-artifacts): no size limit here.
        client_max_body_size 0;
        proxy_request_buffering off;

        # The load balancer's health check: answered by MLflow itself, not by nginx.
        location = /health {
            access_log off;
            proxy_pass http://127.0.0.1:@@MLFLOW_PORT@@/health;
            proxy_set_header Host localhost;
        }

        location / {
            proxy_pass http://127.0.0.1:@@MLFLOW_PORT@@;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto;
            proxy_read_timeout 600s;
            proxy_send_timeout 600s;
        }
    }
}
NGINX

cat > /etc/logrotate.d/mlflow <<'ROTATE'
/var/log/mlflow/*.log {
    daily
    rotate 7
    compress
    missingok
    notifempty
    copytruncate
}
ROTATE

cat > /opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json <<'JSON'
{
  "agent": {"run_as_user": "root"},
  "logs": {
    "logs_collected": {
      "files": {
        "collect_list": [
          {"file_path": "/var/log/mlflow/server.log", "log_group_name": "@@LOG_GROUP_SERVER@@", "log_stream_name": "{instance_id}"},
          {"file_path": "/var/log/nginx/access.log", "log_group_name": "@@LOG_GROUP_NGINX@@", "log_stream_name": "{instance_id}/access"},
          {"file_path": "/var/log/nginx/error.log", "log_group_name": "@@LOG_GROUP_NGINX@@", "log_stream_name": "{instance_id}/error"},
          {"file_path": "/var/log/cloud-init-output.log", "log_group_name": "@@LOG_GROUP_SYSTEM@@", "log_stream_name": "{instance_id}/cloud-init"}
        ]
      }
    }
  },
  "metrics": {
    "namespace": "@@METRICS_NAMESPACE@@",
    "append_dimensions": {"AutoScalingGroupName": "${aws:AutoScalingGroupName}"},
    "aggregation_dimensions": [["AutoScalingGroupName"]],
    "metrics_collected": {
      "mem": {"measurement": ["mem_used_percent"]},
      "disk": {"measurement": ["used_percent"], "resources": ["/"]}
    }
  }
}
JSON

/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
  -c file:/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json

systemctl daemon-reload
systemctl enable --now mlflow.service nginx.service
'''
