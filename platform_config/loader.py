"""The one reader of the environment files: text of every environment's two files -> validated,
typed environments.

``load(root)`` reads ``env_specific_vars/`` and ``backend_configs/`` under ``root``;
``load_environments`` does the same from text already in memory (tests).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from platform_config import hcl, naming
from platform_config.backend import REFUSED_KEYS, BackendSettings
from platform_config.environment import RESERVED_TAGS, EnvironmentSettings
from platform_config.errors import ConfigError, Problem
from platform_config.resolved import (
    BootstrapNames,
    DatabricksNames,
    MlflowNames,
    bootstrap_names,
    databricks_names,
    mlflow_names,
)
from platform_config.secrets import find_secrets

TFVARS_DIR = "env_specific_vars"
BACKEND_DIR = "backend_configs"
TFVARS_SUFFIX = ".tfvars"
BACKEND_SUFFIX = ".config"


@dataclass(frozen=True)
class EnvironmentNames:
    """Every derived physical name of one environment, per stack kind."""

    bootstrap: BootstrapNames
    mlflow: MlflowNames
    databricks: DatabricksNames


@dataclass(frozen=True)
class Environment:
    """One environment: its name, the typed contents of its two files, and what they resolve to."""

    name: str
    settings: EnvironmentSettings
    backend: BackendSettings
    tfvars_file: str
    backend_file: str
    names: EnvironmentNames


def read_config_dir(root: Path, directory: str) -> dict[str, str]:
    """Map ``<directory>/<file>`` to its text, for every non-hidden file of the directory."""
    path = root / directory
    if not path.is_dir():
        return {}
    files: dict[str, str] = {}
    for entry in sorted(path.iterdir()):
        if entry.name.startswith(".") or entry.name == "README.md" or not entry.is_file():
            continue
        try:
            files[f"{directory}/{entry.name}"] = entry.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                [Problem(f"{directory}/{entry.name}", "", f"cannot read file: {exc}")]
            ) from None
    return files


def load(root: Path, names: Sequence[str] | None = None, source: str = "--env") -> list[Environment]:
    """Every environment under ``root`` (or the named ones); ConfigError lists every problem.

    All environments are validated even when only some are selected: a broken file is reported
    whichever environment is asked for. ``source`` names where ``names`` came from in errors.
    """
    envs = load_environments(read_config_dir(root, TFVARS_DIR), read_config_dir(root, BACKEND_DIR))
    return envs if not names else select(envs, list(names), source)


def load_environments(tfvars: dict[str, str], backends: dict[str, str]) -> list[Environment]:
    """Validate every environment. Arguments map a file's path (as shown to users) to its text.

    Raises ConfigError listing every problem found, across all files.
    """
    problems: list[Problem] = []
    by_name_vars = _by_env_name(tfvars, TFVARS_SUFFIX, problems)
    by_name_backend = _by_env_name(backends, BACKEND_SUFFIX, problems)

    if not by_name_vars and not by_name_backend and not problems:
        raise ConfigError(
            [
                Problem(
                    TFVARS_DIR,
                    "",
                    f"no environments found: add {TFVARS_DIR}/<env>.tfvars and {BACKEND_DIR}/<env>.config",
                )
            ]
        )
    for name in sorted(set(by_name_vars) - set(by_name_backend)):
        problems.append(
            Problem(by_name_vars[name], "", f"no matching backend config {BACKEND_DIR}/{name}.config")
        )
    for name in sorted(set(by_name_backend) - set(by_name_vars)):
        problems.append(
            Problem(by_name_backend[name], "", f"no matching variables file {TFVARS_DIR}/{name}.tfvars")
        )

    valid: list[tuple[str, EnvironmentSettings, BackendSettings, str, str]] = []
    for name in sorted(set(by_name_vars) & set(by_name_backend)):
        vars_file, backend_file = by_name_vars[name], by_name_backend[name]
        settings = _validate_tfvars(name, vars_file, tfvars[vars_file], problems)
        backend = _validate_backend(name, backend_file, backends[backend_file], problems)
        if settings is None or backend is None:
            continue
        problems.extend(_cross_checks(name, settings, vars_file, backend, backend_file))
        valid.append((name, settings, backend, vars_file, backend_file))

    if problems:
        raise ConfigError(problems)
    return [
        Environment(name, settings, backend, vars_file, backend_file, _names(name, settings))
        for name, settings, backend, vars_file, backend_file in valid
    ]


def _names(name: str, settings: EnvironmentSettings) -> EnvironmentNames:
    return EnvironmentNames(bootstrap_names(name), mlflow_names(name), databricks_names(name, settings))


def select(envs: list[Environment], names: list[str], source: str) -> list[Environment]:
    """Keep the named environments; an unknown name is a ConfigError naming ``source``."""
    known = {e.name: e for e in envs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            [
                Problem(source, "", f"unknown environment {n!r} (known: {', '.join(sorted(known))})")
                for n in unknown
            ]
        )
    return [known[n] for n in names]


def _by_env_name(files: dict[str, str], suffix: str, problems: list[Problem]) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(files):
        base = path.rsplit("/", 1)[-1]
        if not base.endswith(suffix):
            problems.append(Problem(path, "", f"unexpected file; environment files are <env>{suffix}"))
            continue
        name = base[: -len(suffix)]
        if not naming.ENV_NAME_RE.match(name):
            problems.append(
                Problem(
                    path,
                    "",
                    f"environment name {name!r} must be 2-8 lowercase letters or digits, starting "
                    "with a letter (it is part of bucket and table names)",
                )
            )
            continue
        out[name] = path
    return out


def _validate_tfvars(name: str, file: str, text: str, problems: list[Problem]) -> EnvironmentSettings | None:
    data, parse_problems = hcl.parse(text, file)
    if parse_problems:
        problems.extend(parse_problems)
        return None
    secret_problems = [
        Problem(file, key, f"{why}; secrets never go in tfvars (use Secrets Manager/SSM or CI secrets)")
        for key, why in find_secrets(data)
    ]
    if secret_problems:
        problems.extend(secret_problems)
        return None
    settings = _validate_model(EnvironmentSettings, data, file, problems)
    if isinstance(settings, EnvironmentSettings):
        if settings.environment != name:
            problems.append(
                Problem(
                    file,
                    "environment",
                    f"is {settings.environment!r} but the file is for environment {name!r}",
                )
            )
            return None
        return settings
    return None


def _validate_backend(name: str, file: str, text: str, problems: list[Problem]) -> BackendSettings | None:
    data, parse_problems = hcl.parse(text, file)
    if parse_problems:
        problems.extend(parse_problems)
        return None
    refused = [Problem(file, k, f"not allowed here: {REFUSED_KEYS[k]}") for k in data if k in REFUSED_KEYS]
    if refused:
        problems.extend(refused)
        return None
    backend = _validate_model(BackendSettings, data, file, problems)
    if not isinstance(backend, BackendSettings):
        return None
    before = len(problems)
    expected_bucket = naming.state_bucket(name)
    if backend.bucket != expected_bucket:
        problems.append(
            Problem(file, "bucket", f"is {backend.bucket!r}; environment {name!r} uses {expected_bucket!r}")
        )
    expected_table = naming.lock_table(name)
    if backend.dynamodb_table is not None and backend.dynamodb_table != expected_table:
        problems.append(
            Problem(
                file,
                "dynamodb_table",
                f"is {backend.dynamodb_table!r}; environment {name!r} uses {expected_table!r}",
            )
        )
    if backend.dynamodb_table is None and not backend.use_lockfile:
        problems.append(
            Problem(
                file,
                "dynamodb_table",
                "no state locking configured: set dynamodb_table, use_lockfile = true, or both",
            )
        )
    if not backend.encrypt:
        problems.append(Problem(file, "encrypt", "must be true: state files hold sensitive data"))
    return backend if len(problems) == before else None


def _validate_model(
    model: type[BaseModel], data: dict[str, Any], file: str, problems: list[Problem]
) -> BaseModel | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            problems.append(Problem(file, _loc(err["loc"]), _message(err)))
        return None


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"function-after\[.*\]|[a-z]+\[.*\]", str(part)):
            continue  # pydantic's validator frames, not user keys
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see the README for the accepted keys)"
    if kind == "missing":
        return "missing required key"
    msg = str(err["msg"])
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    got = err.get("input")
    if kind.endswith("_type") or kind in {"literal_error", "bool_parsing", "int_parsing"}:
        return f"{msg} (got {got!r})"
    return msg


def _cross_checks(
    name: str,
    settings: EnvironmentSettings,
    vars_file: str,
    backend: BackendSettings,
    backend_file: str,
) -> list[Problem]:
    problems: list[Problem] = []
    if backend.region != settings.aws_region:
        problems.append(
            Problem(
                backend_file,
                "region",
                f"is {backend.region!r} but {vars_file} sets aws_region = {settings.aws_region!r}; "
                "the state bucket is created in the environment's region",
            )
        )
    if settings.state_bucket.sse_algorithm == "aws:kms":
        alias = naming.state_kms_alias(name)
        if backend.kms_key_id is None:
            problems.append(
                Problem(
                    backend_file,
                    "kms_key_id",
                    f"missing: the state bucket only accepts SSE-KMS writes; set kms_key_id = {alias!r}",
                )
            )
        elif not (backend.kms_key_id == alias or backend.kms_key_id.startswith("arn:")):
            problems.append(Problem(backend_file, "kms_key_id", f"must be {alias!r} or a key ARN"))
    for tag in settings.tags:
        if tag in RESERVED_TAGS:
            problems.append(Problem(vars_file, f"tags.{tag}", "is set by the app; remove it"))
    problems.extend(_network_checks(settings, vars_file))
    for block in ("mlflow", "databricks"):
        for key, message in getattr(settings, block).check(settings):
            problems.append(Problem(vars_file, f"{block}.{key}" if key else block, message))
    return problems


def _network_checks(settings: EnvironmentSettings, file: str) -> list[Problem]:
    net = settings.network
    problems: list[Problem] = []
    for i, az in enumerate(net.availability_zones):
        if not re.fullmatch(re.escape(settings.aws_region) + r"[a-z]", az):
            problems.append(
                Problem(
                    file,
                    f"network.availability_zones[{i}]",
                    f"{az!r} is not an availability zone of {settings.aws_region}",
                )
            )
    if len(set(net.availability_zones)) != len(net.availability_zones):
        problems.append(Problem(file, "network.availability_zones", "lists a zone twice"))
    vpc = ipaddress.ip_network(net.vpc_cidr)
    seen: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    for tier in ("public", "private", "database"):
        key = f"network.{tier}_subnet_cidrs"
        cidrs: tuple[str, ...] = getattr(net, f"{tier}_subnet_cidrs")
        if len(cidrs) != len(net.availability_zones):
            problems.append(
                Problem(
                    file,
                    key,
                    f"has {len(cidrs)} entries; needs one per availability zone "
                    f"({len(net.availability_zones)})",
                )
            )
        for i, cidr in enumerate(cidrs):
            sub = ipaddress.ip_network(cidr)
            if not sub.subnet_of(vpc):  # type: ignore[arg-type]
                problems.append(Problem(file, f"{key}[{i}]", f"{cidr} is outside vpc_cidr {net.vpc_cidr}"))
            for other_key, other in seen:
                if sub.overlaps(other):
                    problems.append(Problem(file, f"{key}[{i}]", f"{cidr} overlaps {other_key} ({other})"))
            seen.append((f"{key}[{i}]", sub))
    if settings.is_production and net.single_nat_gateway:
        problems.append(
            Problem(
                file,
                "network.single_nat_gateway",
                "must be false in a production environment (one NAT gateway per zone)",
            )
        )
    return problems
