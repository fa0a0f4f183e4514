"""The one reader of the environment files: text of every environment's two files -> validated,
typed environments.

``load(root)`` reads ``env_specific_vars/`` and ``backend_configs/`` under ``root``;
``load_environments`` does the same from text already in memory (tests).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from platform_config import hcl, naming, rules
from platform_config.backend import REFUSED_KEYS, BackendSettings
from platform_config.environment import EnvironmentSettings
from platform_config.errors import ConfigError, Problem
from platform_config.resolved import EnvironmentNames, resolve
from platform_config.secrets import find_secrets

TFVARS_DIR = "env_specific_vars"
BACKEND_DIR = "backend_configs"
TFVARS_SUFFIX = ".tfvars"
BACKEND_SUFFIX = ".config"


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

    valid: list[rules.Validated] = []
    for name in sorted(set(by_name_vars) & set(by_name_backend)):
        vars_file, backend_file = by_name_vars[name], by_name_backend[name]
        settings = _validate_tfvars(name, vars_file, tfvars[vars_file], problems)
        backend = _validate_backend(name, backend_file, backends[backend_file], problems)
        if settings is None or backend is None:
            continue
        env = rules.Validated(name, settings, backend, vars_file, backend_file)
        problems.extend(rules.check_environment(env))
        valid.append(env)
    problems.extend(rules.check_across(valid))

    if problems:
        raise ConfigError(problems)
    return [
        Environment(v.name, v.settings, v.backend, v.tfvars_file, v.backend_file, resolve(v.name, v.settings))
        for v in valid
    ]


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
    backend_problems = rules.check_backend(name, backend, file)
    problems.extend(backend_problems)
    return None if backend_problems else backend


def _validate_model(
    model: type[BaseModel], data: dict[str, Any], file: str, problems: list[Problem]
) -> BaseModel | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        for err in errors:
            if err["type"] == "too_short" and _has_item_errors(err["loc"], errors):
                continue  # pydantic counts only the valid items: the bad item is the one problem
            problems.append(Problem(file, _loc(err["loc"]), _message(err)))
        return None


def _has_item_errors(loc: tuple[int | str, ...], errors: list[Any]) -> bool:
    return any(len(e["loc"]) > len(loc) and e["loc"][: len(loc)] == loc for e in errors)


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
        return "unknown key (check the spelling; docs/configuration.md lists the accepted keys)"
    if kind == "missing":
        return "missing required key"
    msg = str(err["msg"])
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    got = err.get("input")
    if kind.endswith("_type") or kind in {"literal_error", "bool_parsing", "int_parsing"}:
        return f"{msg} (got {got!r})"
    return msg
