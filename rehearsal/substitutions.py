"""The ONE place where the synthesized boot script is changed to run on this machine.

The boot script is written for Amazon Linux 2023 under systemd; this machine is Debian without
systemd, and the rehearsal runs several "instances" side by side. Only lines that are about the
operating system change: package installation, the service manager, file-system locations and
the two downloads/agents that exist only on EC2. Everything else (the launcher, the settings read
from SSM, the IAM database token plugin, the MLflow command line, nginx's configuration) runs as
rendered. The database-user Lambda's one substitution is at the end (``db_user_authentication``).

Every rule states how many times its pattern must match. A rule that matches a different number
of times is an error: a change to the boot script that this table does not cover fails loudly
instead of being rehearsed half-substituted. After all rules, no system path or service-manager
call may be left (``LEFTOVERS``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Rule:
    pattern: str  # a regular expression (MULTILINE)
    replacement: str  # str.format() fields from Context; \g<n> for groups of the pattern
    count: int  # exact number of matches in the script
    why: str


@dataclass(frozen=True)
class Context:
    """Where one rehearsal instance lives."""

    root: Path  # stands for "/" of the instance
    venv: Path  # the MLflow virtualenv, shared by the instances (installed once)
    ca_bundle: Path  # the rehearsal's CA: stands for RDS's regional bundle
    mlflow_port: int
    nginx_port: int


class SubstitutionError(Exception):
    pass


RULES: tuple[Rule, ...] = (
    Rule(
        r"^dnf install -y .*$",
        ': "packages: installed by the harness from Debian (rehearsal/install.py)"',
        1,
        "dnf and Amazon Linux package names; the harness installed the Debian equivalents",
    ),
    Rule(
        r"^id -u mlflow .*useradd .*$",
        ': "no system user: the rehearsal runs its processes as the invoking user"',
        1,
        "creating system users needs a real host; the instances share this machine",
    ),
    Rule(
        r"install -d -o mlflow -g mlflow ",
        "install -d ",
        1,
        "the mlflow user does not exist here (see above)",
    ),
    Rule(
        r"^curl -fsSL .*truststore\.pki\.rds\.amazonaws\.com.*$",
        "cp {ca_bundle} /opt/mlflow/rds-ca.pem",
        1,
        "no traffic leaves the machine: the rehearsal's own CA signs the local MariaDB's certificate",
    ),
    Rule(
        r"^user nginx;$",
        "user www-data;",
        1,
        "Debian's nginx runs its workers as www-data (Amazon Linux: nginx)",
    ),
    Rule(
        r"listen 80 default_server;",
        "listen 127.0.0.1:{nginx_port} default_server;",
        1,
        "several instances share this machine: a free port, on the loopback interface only",
    ),
    Rule(
        r"127\.0\.0\.1:5000\b",
        "127.0.0.1:{mlflow_port}",
        2,
        "nginx's upstream: the instance's free MLflow port",
    ),
    Rule(
        r'"--port", "5000"',
        '"--port", "{mlflow_port}"',
        1,
        "MLflow's port: a free one per instance",
    ),
    Rule(
        r"^/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl .*\\\n.*$",
        "python3 -m json.tool /opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json >/dev/null",
        1,
        "the CloudWatch agent exists only on EC2; its configuration is still checked to be JSON",
    ),
    Rule(r"^systemctl daemon-reload$", ":", 1, "no systemd"),
    Rule(
        r"^systemctl enable --now (.+)$",
        r"printf '%s\n' \g<1> > {root}/run/enable-now",
        1,
        "no systemd: the harness starts the listed units after the script ends",
    ),
    # File-system locations, most specific first. Counts are of the text after the rules above.
    Rule(r"/opt/mlflow/venv\b", "{venv}", 5, "one MLflow venv, installed once, for every instance"),
    Rule(r"(?<![\w/])/opt/mlflow\b", "{root}/opt/mlflow", 9, "the instance's own /opt"),
    Rule(r"(?<![\w/])/var/log/mlflow\b", "{root}/var/log/mlflow", 5, "the instance's own /var/log"),
    Rule(
        r"(?<![\w/])/etc/systemd/system\b",
        "{root}/etc/systemd/system",
        1,
        "the unit file, read by the harness",
    ),
    Rule(r"(?<![\w/])/etc/nginx/", "{root}/etc/nginx/", 1, "the instance's nginx.conf"),
    Rule(r"(?<![\w/])/var/log/nginx/", "{root}/var/log/nginx/", 4, "the instance's nginx logs"),
    Rule(r"(?<![\w/])/run/nginx\.pid\b", "{root}/run/nginx.pid", 1, "the instance's nginx pid file"),
    Rule(r"(?<![\w/])/etc/logrotate\.d/", "{root}/etc/logrotate.d/", 1, "written, not run"),
    Rule(
        r"(?<![\w/])/opt/aws/amazon-cloudwatch-agent/",
        "{root}/opt/aws/amazon-cloudwatch-agent/",
        2,
        "the agent's configuration is written and checked (see above)",
    ),
)

# Directories the Amazon Linux packages create (nginx, systemd, logrotate, the CloudWatch agent),
# and the ones every Linux host has.
PACKAGE_DIRS = (
    "etc/systemd/system",
    "etc/nginx",
    "etc/logrotate.d",
    "var/log/nginx",
    "opt/aws/amazon-cloudwatch-agent/etc",
    "run",
    "tmp",
)

# Anything that would touch the real system after substitution.
LEFTOVERS = re.compile(r"\bsystemctl\b|\bdnf\b|(?<![\w/])/(opt|etc/systemd|etc/nginx|run)/")


def apply(script: str, ctx: Context, rules: tuple[Rule, ...] = RULES) -> str:
    """The script with every rule applied; SubstitutionError names each rule that missed."""
    fields = {
        "root": str(ctx.root),
        "venv": str(ctx.venv),
        "ca_bundle": str(ctx.ca_bundle),
        "mlflow_port": str(ctx.mlflow_port),
        "nginx_port": str(ctx.nginx_port),
    }
    problems = []
    for rule in rules:
        regex = re.compile(rule.pattern, re.MULTILINE)
        found = len(regex.findall(script))
        if found != rule.count:
            problems.append(f"rule {rule.pattern!r} ({rule.why}): {found} matches, expected {rule.count}")
            continue
        # m.expand reads "\\n" as a newline: keep it a backslash-n for the shell (printf).
        template = rule.replacement.format(**fields).replace("\\n", "\\\\n")

        def expand(m: re.Match[str], template: str = template) -> str:
            return m.expand(template)

        script = regex.sub(expand, script)
    if problems:
        raise SubstitutionError("the boot script changed:\n  " + "\n  ".join(problems))
    for lineno, line in enumerate(script.splitlines(), 1):
        if LEFTOVERS.search(line.replace(str(ctx.venv), "VENV").replace(str(ctx.root), "ROOT")):
            raise SubstitutionError(f"line {lineno} still touches the system: {line.strip()}")
    return script


# The upgrade's script (ops/mlflow/upgrade_script.py), which ``ops mlflow upgrade`` sends to one
# instance with SSM Run Command: run on the rehearsal's instance as it would on EC2, its target
# venv the one installed once (the pinned release), its files in the instance's own /opt.
UPGRADE_RULES: tuple[Rule, ...] = (
    Rule(
        r'"\$TARGET/venv\b',
        '"{venv}',
        4,
        "the pinned release's venv, installed once for every instance (pip finds everything there)",
    ),
    Rule(r"^TARGET=/opt/mlflow/", "TARGET={root}/opt/mlflow/", 1, "the instance's own /opt"),
    Rule(
        r"(?<![\w/])/opt/mlflow/rds-ca\.pem\b",
        "{ca_bundle}",
        1,
        "mlflow_upgrade's RDS bundle: the rehearsal's CA, as for the boot script",
    ),
)


# The database-user Lambda (constructs_lib/db_users_lambda/handler.py) runs as shipped, through its
# ``provision`` function, with two inputs given instead of its own:
# - the authentication clause of CREATE USER / ALTER USER. MariaDB has no AWSAuthenticationPlugin;
#   its auth_pam plugin, loaded with pam_use_cleartext_plugin=ON, asks the client for
#   mysql_clear_password exactly as RDS does, and the rehearsal's PAM service checks each token's
#   signature, user, endpoint and age as RDS would (rehearsal/iam_token.py, servers.TokenVerifier);
# - the CA bundle: the rehearsal's CA instead of RDS's regional download, as for the boot script.
DB_USER_AUTHENTICATION = "IDENTIFIED VIA pam USING '{service}'"


def db_user_authentication(service: str) -> str:
    """MariaDB's clause in place of the handler's ``IAM_AUTHENTICATION`` (see above)."""
    return DB_USER_AUTHENTICATION.format(service=service)


# The provisioning function sets the Redis AUTH token with ElastiCache's ModifyReplicationGroup
# (db_users_lambda/generated_secrets.py). Here the same calls reach the local Redis through its ACL,
# with ElastiCache's rules where they can be kept: ROTATE adds a password to the default user and
# keeps the others, SET keeps only the given one and must be the last rotated token. (Between the
# two ElastiCache still takes no password too; Redis's ACL drops ``nopass`` at the first password:
# stricter, never looser.)
class ElastiCacheOverRedis:
    def __init__(self, redis: Any, group_id: str) -> None:
        self.redis = redis
        self.group_id = group_id
        self.rotated: str | None = None
        self.calls: list[str] = []

    def describe_replication_groups(self, ReplicationGroupId: str) -> dict[str, Any]:  # noqa: N803
        self._check(ReplicationGroupId)
        return {"ReplicationGroups": [{"Status": "available", "AuthTokenEnabled": bool(self.redis.token)}]}

    def modify_replication_group(self, **kwargs: Any) -> None:
        self._check(kwargs["ReplicationGroupId"])
        strategy, token = kwargs["AuthTokenUpdateStrategy"], kwargs["AuthToken"]
        self.calls.append(strategy)
        if strategy == "ROTATE":
            self.redis.cli("ACL", "SETUSER", "default", "on", f">{token}")
            self.rotated = token
        elif strategy == "SET":
            if token != self.rotated:
                raise ValueError("SET is allowed only with the last rotated token")
            self.redis.cli("ACL", "SETUSER", "default", "on", "resetpass", f">{token}")
            self.redis.token = token
        else:
            raise ValueError(f"strategy {strategy!r} is not used here")

    def get_waiter(self, name: str) -> Any:
        class Waiter:
            def wait(self, **kwargs: Any) -> None:
                pass  # the local Redis applies a change at once

        return Waiter()

    def _check(self, group_id: str) -> None:
        if group_id != self.group_id:
            raise ValueError(f"no replication group {group_id!r}")
