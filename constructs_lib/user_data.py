"""The MLflow instances' boot script, rendered in Python (no Terraform templating).

The script holds no secret and no Terraform-computed value: every run-time setting (database
host and user, bucket, the secrets' ARNs) is read from SSM Parameter Store under the stack's
parameter path each time MLflow starts, and the secrets from Secrets Manager. The database takes
RDS IAM tokens, signed on the instance for each new connection (the master secret is never read).
The Python it installs is kept as real files next to this module (``instance/``: the launcher, the
IAM token plugin, the schema handling, the sign-in app), embedded without their comment lines
(``code_lines``: the same code). So the rendered text is known at
synthesis time and tested as is (``bash -n``, the rehearsal runs it), and a change to it rolls the
instances.

The text no longer fits EC2's 16 KB of user data: ``user_data_base64`` gzips it (cloud-init
decompresses gzip user data) with ``constructs_lib.deflate``, whose bytes depend on the text alone,
so the launch template is the same whichever machine synthesizes it.
"""

from __future__ import annotations

import ast
import base64
import io
import re
import tokenize
from dataclasses import asdict, dataclass
from pathlib import Path

from constructs_lib import deflate

PLACEHOLDER = re.compile(r"@@([A-Z0-9_]+)@@")
# Rendered values end up inside shell, Python and JSON strings: nothing that could break out.
SAFE_VALUE = re.compile(r"^[A-Za-z0-9_./:,*=+@-]*$")

# One pip constraint: name==version (what `pip freeze` prints).
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*==[A-Za-z0-9][A-Za-z0-9_.+!-]*$")
MLFLOW_PORT = 5000
# What the boot script installs besides MLflow (with its sign-in extra, Flask-WTF): the database
# driver, the AWS SDK (settings, IAM database tokens, artifacts) and the job queue's Redis client;
# versions come from the constraints.
INSTALLED = ("mlflow", "pymysql", "boto3", "redis", "flask-wtf")
# The pip line's requirements: MLflow with its sign-in extra, and the others.
PIP_REQUIREMENTS = ("mlflow[auth]", "pymysql", "boto3", "redis")
# EC2 takes at most 16 KB of user data, base64-encoded (launch templates: EC2 API UserData).
USER_DATA_LIMIT = 16 * 1024
# The instance's Python, embedded as they are in the repository (``instance/``).
INSTANCE_DIR = Path(__file__).parent / "instance"
INSTANCE_FILES = {
    "LAUNCH_PY": "launch.py",
    "RDS_IAM_PY": "mlflow_rds_iam.py",
    "SCHEMAS_PY": "mlflow_schemas.py",
    "SIGNIN_PY": "mlflow_signin.py",
}

# The SSM parameters (under the stack's path) the launcher reads: render() refuses a settings list
# that does not provide exactly these, so the stack's parameters and the script cannot drift apart.
LAUNCHER_SETTINGS = frozenset(
    {
        "db_host",
        "db_port",
        "db_name",
        "db_auth_name",
        "db_user",
        "artifacts_destination",
        "alb_dns_name",
        "admin_password_secret_arn",
        "flask_secret_key_secret_arn",
    }
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
    # Sign-in: the administrator MLflow creates at its first start, and default_permission.
    admin_username: str
    default_permission: str
    # The auto scaling group an instance reports itself unhealthy to (a schema of another release).
    autoscaling_group: str
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
    template = with_instance_files(TEMPLATE)
    missing = sorted(set(PLACEHOLDER.findall(template)) - set(mapping))
    if missing:
        raise ValueError(f"user data placeholders without a value: {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: mapping[m.group(1)], template)


_Documented = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef


def _with_docstring(tree: ast.AST) -> list[_Documented]:
    """The modules, classes and functions whose docstring can go: a string constant as the first
    statement, and not the body's only statement."""
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and len(node.body) > 1
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
        and isinstance(node.body[0].value.value, str)
    ]


def _without_docstrings(tree: ast.AST) -> str:
    for node in _with_docstring(tree):
        node.body.pop(0)
    return ast.dump(tree)


def code_lines(source: str, name: str) -> str:
    """``source`` without its comment-only lines and its docstrings (user data is short of room);
    the code is the same, which is checked: both texts must parse to the same syntax tree once the
    source's docstrings are left out of it."""
    dropped = {
        tok.start[0]
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT and tok.line.lstrip().startswith("#")
    }
    lines = source.splitlines(keepends=True)
    for doc in (node.body[0] for node in _with_docstring(ast.parse(source))):
        first, last = lines[doc.lineno - 1].encode(), lines[(doc.end_lineno or doc.lineno) - 1].encode()
        # Only a docstring on lines of its own (nothing else before or after it on them; the
        # offsets count UTF-8 bytes).
        if first[: doc.col_offset].strip() == b"" and last[doc.end_col_offset or 0 :].strip() == b"":
            dropped.update(range(doc.lineno, (doc.end_lineno or doc.lineno) + 1))
    kept = "".join(line for number, line in enumerate(lines, 1) if number not in dropped)
    if ast.dump(ast.parse(kept)) != _without_docstrings(ast.parse(source)):
        raise ValueError(
            f"user data: {name} changed its code when its comment lines and docstrings were left out"
        )
    return kept


def with_instance_files(template: str) -> str:
    """The template with each ``@@FILE:NAME@@`` replaced by that instance file's code
    (``code_lines``); a file may not hold the heredoc's end marker (``EOF_NAME`` on a line of its
    own)."""
    for key, name in INSTANCE_FILES.items():
        text = code_lines((INSTANCE_DIR / name).read_text(encoding="utf-8"), name).rstrip("\n")
        if re.search(rf"^EOF_{key}$", text, re.MULTILINE):
            raise ValueError(f"user data: {name} holds its heredoc's end marker EOF_{key}")
        template = template.replace(f"@@FILE:{key}@@", text)
    return template


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
    """Launch templates take user data base64-encoded: here, of the gzipped text (cloud-init
    decompresses it). Refused when EC2 would refuse it (over 16 KB)."""
    encoded = base64.b64encode(deflate.gzip(script.encode())).decode()
    if len(encoded) > USER_DATA_LIMIT:
        raise ValueError(
            f"user data: {len(encoded)} bytes base64-encoded and gzipped, EC2 takes {USER_DATA_LIMIT}"
        )
    return encoded


def decode(user_data_base64: str) -> str:
    """The boot script a launch template's user data holds (``encode``'s inverse)."""
    import gzip

    return gzip.decompress(base64.b64decode(user_data_base64)).decode()


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


TEMPLATE = r"""#!/bin/bash
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
  "mlflow[auth]==@@MLFLOW_VERSION@@" pymysql boto3 redis
# require_secure_transport=ON on the server: the client verifies RDS's certificate with this bundle.
curl -fsSL --retry 5 "https://truststore.pki.rds.amazonaws.com/$REGION/$REGION-bundle.pem" -o /opt/mlflow/rds-ca.pem
chmod 0644 /opt/mlflow/rds-ca.pem

# IAM database authentication: the SQLAlchemy plugin rds_iam, named in the database URIs, gives each
# new connection of every MLflow process a fresh token. SQLAlchemy finds plugins by entry point.
# mlflow_schemas creates an empty database's schemas and only verifies a filled one's.
SITE=$(/opt/mlflow/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
cat > "$SITE/mlflow_rds_iam.py" <<'EOF_RDS_IAM_PY'
@@FILE:RDS_IAM_PY@@
EOF_RDS_IAM_PY
cat > "$SITE/mlflow_schemas.py" <<'EOF_SCHEMAS_PY'
@@FILE:SCHEMAS_PY@@
EOF_SCHEMAS_PY
# mlflow_signin: MLflow's sign-in app with two per-request lookups remembered (docs/stacks/mlflow.md).
cat > "$SITE/mlflow_signin.py" <<'EOF_SIGNIN_PY'
@@FILE:SIGNIN_PY@@
EOF_SIGNIN_PY
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

cat > /opt/mlflow/launch.py <<'EOF_LAUNCH_PY'
@@FILE:LAUNCH_PY@@
EOF_LAUNCH_PY

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
# launch.py exits 3 when a database holds another MLflow release's schema: no restart loop.
RestartPreventExitStatus=3
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
"""
