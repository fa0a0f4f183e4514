"""Render docs/configuration.md from the models, their ``Field(description=...)`` and ``rules``.

The models are the source of truth: a key without a description is an error here, so the
reference cannot silently miss one. ``python -m ops docs`` writes the file; a test fails when the
committed file differs from ``render_markdown()``.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Iterator
from typing import Any, Literal

from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from platform_config import rules
from platform_config.backend import REFUSED_KEYS, BackendSettings
from platform_config.environment import EnvironmentSettings
from platform_config.loader import BACKEND_DIR, TFVARS_DIR
from platform_config.types import Kind

DOCS_PATH = "docs/configuration.md"
REGENERATE = "python -m ops docs"

_PRODUCTION = {req.key: req.shown for req in rules.PRODUCTION}

# Checked by the loader before any rule runs, for every file.
_FILE_CHECKS = (
    f"Each environment is exactly one `{TFVARS_DIR}/<env>.tfvars` and one `{BACKEND_DIR}/<env>.config`; "
    "a file without its pair, any other file in the two directories, and no environment at all are errors.",
    "The environment name is 2-8 lowercase letters or digits, starting with a letter (it is part of "
    "bucket and table names), and the tfvars' `environment` equals it.",
    "Files are HCL attributes with literal values: syntax errors (with the line), empty files, blocks "
    "(`key { ... }` instead of `key = { ... }`) and expressions or interpolations are errors.",
    "Unknown keys, missing required keys, wrong types, out-of-range numbers and malformed values are "
    "errors at the key's dotted path.",
    "No tfvars key or value may look like a credential (by the key's name, or an AWS access key id, "
    "Databricks or GitHub token, private key...): secrets go to Secrets Manager, SSM or CI secrets.",
    "The backend config refuses the keys listed above.",
)


def render_markdown() -> str:
    """The whole of docs/configuration.md."""
    out = [
        "# Configuration reference",
        "",
        f"<!-- Generated from platform_config by platform_config/reference.py; regenerate with "
        f"`{REGENERATE}`. -->",
        "",
        f"An environment is two files: `{TFVARS_DIR}/<env>.tfvars` (every per-environment value of every "
        f"stack) and `{BACKEND_DIR}/<env>.config` (a Terraform partial S3 backend config). Every problem is "
        "reported at once, one per line, as `error: <file>: <key>: <problem>`, and nothing is synthesized.",
        "",
        f"## `{TFVARS_DIR}/<env>.tfvars`",
        "",
        "The Production column is what a production environment (`is_production = true`) must set.",
        "",
        *_tables(EnvironmentSettings, "", production=True),
        f"## `{BACKEND_DIR}/<env>.config`",
        "",
        *_tables(BackendSettings, "", production=False),
        "### Refused keys",
        "",
        "| key | why |",
        "|---|---|",
        *(f"| `{key}` | {_cell(why)} |" for key, why in REFUSED_KEYS.items()),
        "",
        "## Validation rules",
        "",
        "### Every file",
        "",
        *(f"- {check}" for check in _FILE_CHECKS),
        "",
        "### The backend config, for its environment",
        "",
        *(_rule(rule) for rule in rules.BACKEND_RULES),
        "",
        "### Across keys, blocks and the two files",
        "",
        *(_rule(rule) for rule in rules.ENVIRONMENT_RULES),
        "",
        "### Across environments",
        "",
        *(_rule(rule) for rule in rules.ACROSS_RULES),
    ]
    return "\n".join(out) + "\n"


def _tables(model: type[BaseModel], prefix: str, *, production: bool) -> Iterator[str]:
    """One table for ``model``'s keys, then one per nested block, depth first."""
    if prefix:
        yield f"### `{prefix}`"
        yield ""
        yield _cell((model.__doc__ or "").replace("``", "`"))
        yield ""
    header = "| key | type | default | description |"
    yield header + (" production |" if production else "")
    yield "|---|---|---|---|" + ("---|" if production else "")
    nested: list[tuple[type[BaseModel], str]] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}.{field.alias or name}" if prefix else field.alias or name
        if not field.description:
            raise ValueError(f"{path}: the model declares no Field(description=...)")
        row = f"| `{path}` | {_cell(_type(field))} | {_cell(_default(field))} | {_cell(field.description)} |"
        yield row + (f" {_cell(_PRODUCTION.get(path, ''))} |" if production else "")
        block = _block(field.annotation)
        if block is not None:
            is_list = typing.get_origin(_unoptional(field.annotation)) is tuple
            nested.append((block, f"{path}[]" if is_list else path))
    yield ""
    for block, path in nested:
        yield from _tables(block, path, production=production)


def _rule(rule: Any) -> str:
    doc = " ".join((inspect.getdoc(rule) or "").split())
    if not doc:
        raise ValueError(f"rules.{rule.__name__} has no docstring: it is the rule's documentation")
    return f"- {doc} (`{rule.__name__}`)"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _unoptional(annotation: Any) -> Any:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _block(annotation: Any) -> type[BaseModel] | None:
    """The model of a block key (``x = { ... }``) or of a list of blocks; None for plain values."""
    inner = _unoptional(annotation)
    if typing.get_origin(inner) is tuple:
        inner = typing.get_args(inner)[0]
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def _type(field: FieldInfo) -> str:
    return ", ".join([_type_name(field.annotation, field.metadata), *_limits(field.metadata)])


def _type_name(annotation: Any, metadata: list[Any]) -> str:
    kinds = [m.name for m in metadata if isinstance(m, Kind)]
    if kinds:
        return kinds[0]
    annotation = _unoptional(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return _type_name(base, list(extra))
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        *first, last = (f"`{json.dumps(a)}`" for a in args)
        return f"{', '.join(first)} or {last}" if first else last
    if origin in (tuple, dict):
        return _container_name(origin, args)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "block"
    return {str: "string", bool: "bool", int: "number"}.get(annotation, str(annotation))


def _container_name(origin: Any, args: tuple[Any, ...]) -> str:
    item = _type_name(args[0] if origin is tuple else args[1], [])
    if "`" not in item:  # a name, not a list of allowed values
        item += "es" if item.endswith("ss") else "s"
    return f"{'list' if origin is tuple else 'map'} of {item}"


def _limits(metadata: list[Any]) -> list[str]:
    """Ranges and patterns pydantic checks, as the reference states them."""
    low = next((m.ge for m in metadata if isinstance(m, Ge)), None)
    high = next((m.le for m in metadata if isinstance(m, Le)), None)
    shortest = next((m.min_length for m in metadata if isinstance(m, MinLen)), None)
    longest = next((m.max_length for m in metadata if isinstance(m, MaxLen)), None)
    out = [_range(low, high), _range(shortest, longest, "item")]
    out += [f"matching `{m.pattern}`" for m in metadata if getattr(m, "pattern", None)]
    return [text for text in out if text]


def _range(low: Any, high: Any, unit: str = "") -> str:
    if low is None and high is None:
        return ""
    if low is not None and high is not None:
        text = f"{low} to {high}"
    else:
        text = f"at least {low}" if low is not None else f"at most {high}"
    if unit:
        text += f" {unit}" if (high if high is not None else low) == 1 else f" {unit}s"
    return text


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return _hcl(field.default_factory())  # type: ignore[call-arg]
    if field.default is PydanticUndefined:
        return "required"
    if isinstance(field.default, BaseModel):
        changed = field.default.model_dump(exclude_defaults=True, by_alias=True)
        return _hcl(changed) if changed else "its keys' defaults"
    return "unset" if field.default is None else _hcl(field.default)


def _hcl(value: Any) -> str:
    """A default as it would be written in the file, as inline code."""
    text = _literal(value)
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _literal(value: Any) -> str:
    if isinstance(value, dict):
        body = ", ".join(f"{k} = {_literal(v)}" for k, v in value.items())
        return f"{{ {body} }}" if body else "{}"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return json.dumps(value)
