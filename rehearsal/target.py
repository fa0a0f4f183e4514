"""What the rehearsal takes from one synthesized ``mlflow-<env>`` stack: the boot script of the
launch template and the SSM parameters the stack creates, with Terraform-computed values replaced
by the addresses of the local servers."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from constructs_lib import user_data

TOKEN = re.compile(r"\$\{([^}]+)\}")
EXTRA_HOSTS = re.compile(r'^EXTRA_ALLOWED_HOSTS = \[h for h in "([^"]*)"', re.MULTILINE)
WORKERS = re.compile(r'"--workers", "(\d+)"')


@dataclass(frozen=True)
class Target:
    env: str
    stack: dict[str, Any]
    script: str

    @classmethod
    def read(cls, outdir: Path, env: str, script_override: str | None = None) -> Target:
        stack = json.loads((outdir / "stacks" / f"mlflow-{env}" / "cdk.tf.json").read_text())
        encoded = stack["resource"]["aws_launch_template"]["mlflow"]["user_data"]
        return cls(env, stack, script_override or user_data.decode(encoded))

    def resources(self, rtype: str) -> dict[str, Any]:
        found: dict[str, Any] = self.stack["resource"].get(rtype, {})
        return found

    @property
    def region(self) -> str:
        match = re.search(r'^REGION="([^"]+)"', self.script, re.MULTILINE)
        if match is None:
            raise ValueError("the boot script sets no REGION")
        return match.group(1)

    @property
    def instance_type(self) -> str:
        return str(self.resources("aws_launch_template")["mlflow"]["instance_type"])

    @property
    def workers(self) -> int:
        match = WORKERS.search(self.script)
        if match is None:
            raise ValueError("the boot script passes no --workers")
        return int(match.group(1))

    @property
    def https(self) -> bool:
        return any(listener.get("certificate_arn") for listener in self.resources("aws_lb_listener").values())

    @property
    def auth(self) -> dict[str, str]:
        """The launcher's sign-in settings: admin_username, default_permission."""
        found = dict(
            re.findall(r'^(ADMIN_USERNAME|DEFAULT_PERMISSION) = "([^"]*)"$', self.script, re.MULTILINE)
        )
        return {"admin_username": found["ADMIN_USERNAME"], "default_permission": found["DEFAULT_PERMISSION"]}

    def secret_name(self, address: str) -> str:
        return str(self.resources("aws_secretsmanager_secret")[address]["name"])

    @property
    def extra_allowed_hosts(self) -> list[str]:
        match = EXTRA_HOSTS.search(self.script)
        return [h for h in match.group(1).split(",") if h] if match else []

    @property
    def db_username(self) -> str:
        return str(self.resources("aws_db_instance")["mlflow"]["username"])

    @property
    def db_parameters(self) -> dict[str, str]:
        """The DB parameter group's settings, name -> value."""
        group = self.resources("aws_db_parameter_group")["mlflow"]
        return {p["name"]: str(p["value"]) for p in group.get("parameter", [])}

    @property
    def binary_log(self) -> bool:
        """RDS for MySQL keeps a binary log whenever automated backups are on."""
        return int(self.resources("aws_db_instance")["mlflow"]["backup_retention_period"]) > 0

    @property
    def cache_enabled(self) -> bool:
        return "redis_host" in self.parameters_raw()

    def alb_dns_name(self) -> str:
        """What AWS would name the load balancer (``<name>-<id>.<region>.elb.amazonaws.com``)."""
        return f"{self.resources('aws_lb')['mlflow']['name']}-1234567890.{self.region}.elb.amazonaws.com"

    def public_host(self) -> str:
        """The host name users type: the first custom host (the certificate covers it, not the load
        balancer's own ``*.elb.amazonaws.com``)."""
        hosts = self.extra_allowed_hosts
        return hosts[0] if hosts else self.alb_dns_name()

    def parameters_raw(self) -> dict[str, str]:
        return {v["name"].rsplit("/", 1)[1]: v["value"] for v in self.resources("aws_ssm_parameter").values()}

    def parameters(self, local: dict[str, str], overrides: dict[str, str]) -> dict[str, str]:
        """Full name -> value. ``local`` maps Terraform expressions that only AWS can compute to
        local values; ``overrides`` replaces literal values that point at AWS-fixed ports."""
        out = {}
        for resource in self.resources("aws_ssm_parameter").values():
            short = resource["name"].rsplit("/", 1)[1]
            out[resource["name"]] = overrides.get(short) or self.resolve(resource["value"], local)
        return out

    def resolve(self, value: str, local: dict[str, str], depth: int = 0) -> str:
        if depth > 5:
            raise ValueError(f"token nesting too deep in {value!r}")

        def one(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr in local:
                return local[expr]
            rtype, name, attr = expr.split(".", 2)
            literal = self.resources(rtype).get(name, {}).get(attr)
            if not isinstance(literal, str):
                raise ValueError(f"no local value for ${{{expr}}}: add it to the harness's map")
            return self.resolve(literal, local, depth + 1)

        return TOKEN.sub(one, value)
