"""The MLflow instances' boot script, rendered in Python (no Terraform templating).

The script holds no secret and no Terraform-computed value: every run-time setting (database
host, secret ARNs, bucket) is read from SSM Parameter Store under the stack's parameter path, and
credentials from Secrets Manager, each time MLflow starts. So the rendered text is known at
synthesis time, tested as is (``bash -n``), and a change to it rolls the instances.
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
# What the boot script installs besides MLflow: the database driver, the AWS SDK (settings,
# secrets, artifacts) and the job queue's Redis client; their versions come from the constraints.
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
# Holds no secret: the launcher reads settings from SSM and credentials from Secrets Manager.
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

# Fails early, with a clear message, when the stack's parameters are not readable.
for name in @@PARAMETERS@@; do
  aws ssm get-parameter --region "$REGION" --name "$PARAMETER_PATH/$name" --query Parameter.Name --output text
done

cat > /opt/mlflow/launch.py <<'PY'
"""Start MLflow with credentials read at every start: RDS rotates the master password."""

import json
import os
import urllib.parse

import boto3

REGION = "@@REGION@@"
PARAMETER_PATH = "@@PARAMETER_PATH@@"
CACHE_ENABLED = "@@CACHE_ENABLED@@" == "true"
EXTRA_ALLOWED_HOSTS = [h for h in "@@EXTRA_ALLOWED_HOSTS@@".split(",") if h]
MLFLOW = "/opt/mlflow/venv/bin/mlflow"
SCHEMA_LOCK = "mlflow-schema-init"
SCHEMA_LOCK_SECONDS = 600

ssm = boto3.client("ssm", region_name=REGION)
secrets = boto3.client("secretsmanager", region_name=REGION)


def param(name):
    return ssm.get_parameter(Name=PARAMETER_PATH + "/" + name, WithDecryption=True)["Parameter"]["Value"]


def quoted(value):
    return urllib.parse.quote(value, safe="")


db_secret = secrets.get_secret_value(SecretId=param("db_secret_arn"))
with open("/run/mlflow/db-secret-version", "w") as f:
    f.write(db_secret["VersionId"])
db = json.loads(db_secret["SecretString"])
env = dict(os.environ)
# MLflow sends usage telemetry by default (mlflow/environment_variables.py).
env["MLFLOW_DISABLE_TELEMETRY"] = "true"
# Host and port from their own parameters, once each (RDS's "endpoint" already holds the port).
env["MLFLOW_BACKEND_STORE_URI"] = "mysql+pymysql://{}:{}@{}:{}/{}?ssl_ca=/opt/mlflow/rds-ca.pem".format(
    quoted(db["username"]), quoted(db["password"]), param("db_host"), param("db_port"), param("db_name")
)
if CACHE_ENABLED:
    token = secrets.get_secret_value(SecretId=param("redis_auth_secret_arn"))["SecretString"]
    # What MLflow 3.x reads: the job queue's Huey storage (mlflow/server/jobs/utils.py), one queue
    # shared by every instance.
    env["MLFLOW_SERVER_JOB_HUEY_REDIS_URL"] = "rediss://:{}@{}:{}/0".format(
        quoted(token), param("redis_host"), param("redis_port")
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
        host=param("db_host"), port=int(param("db_port")), user=db["username"], password=db["password"],
        database=param("db_name"), ssl={"ca": "/opt/mlflow/rds-ca.pem"},
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
RuntimeDirectory=mlflow
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

# When RDS rotates the master password, restart MLflow so it reconnects with the new one.
cat > /opt/mlflow/secret-watch.sh <<'SH'
#!/bin/bash
set -euo pipefail
arn=$(aws ssm get-parameter --region "@@REGION@@" --name "@@PARAMETER_PATH@@/db_secret_arn" \
  --with-decryption --query Parameter.Value --output text)
current=$(aws secretsmanager get-secret-value --region "@@REGION@@" --secret-id "$arn" \
  --query VersionId --output text)
if [ "$current" != "$(cat /run/mlflow/db-secret-version 2>/dev/null || true)" ]; then
  systemctl restart mlflow
fi
SH
chmod 0750 /opt/mlflow/secret-watch.sh

cat > /etc/systemd/system/mlflow-secret-watch.service <<'UNIT'
[Unit]
Description=Restart MLflow after a database password rotation

[Service]
Type=oneshot
ExecStart=/opt/mlflow/secret-watch.sh
UNIT

cat > /etc/systemd/system/mlflow-secret-watch.timer <<'UNIT'
[Unit]
Description=Check the MLflow database secret every five minutes

[Timer]
OnBootSec=10min
OnUnitActiveSec=5min
# Spread the restarts of several instances after one rotation.
RandomizedDelaySec=120

[Install]
WantedBy=timers.target
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
systemctl enable --now mlflow.service mlflow-secret-watch.timer nginx.service
'''
