"""Parse a tfvars or partial backend config file into plain Python values."""

from __future__ import annotations

from typing import Any

import hcl2
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from platform_config.errors import Problem

_OPTIONS = hcl2.SerializationOptions(
    with_comments=False,
    strip_string_quotes=True,
    preserve_heredocs=False,
    explicit_blocks=True,
)


def parse(text: str, file: str) -> tuple[dict[str, Any], list[Problem]]:
    """Return the attributes of an HCL attribute-only file (tfvars / partial backend config).

    Blocks, expressions and interpolations are rejected: these files hold literal values only.
    """
    if not any(line.strip() and not line.lstrip().startswith(("#", "//")) for line in text.splitlines()):
        return {}, [Problem(file, "", "file is empty (or only comments)")]
    try:
        data = hcl2.loads(text, serialization_options=_OPTIONS)
    except UnexpectedInput as exc:
        return {}, [Problem(file, f"line {exc.line}", f"HCL syntax error: unexpected {_what(exc)}")]
    except (LarkError, ValueError) as exc:  # python-hcl2 raises ValueError on some malformed input
        return {}, [Problem(file, "", f"HCL syntax error: {str(exc).splitlines()[0]}")]
    problems: list[Problem] = []
    _check_literals(data, "", file, problems)
    return data, problems


def _check_literals(value: Any, key: str, file: str, problems: list[Problem]) -> None:
    if isinstance(value, dict):
        if value.get("__is_block__"):
            problems.append(Problem(file, key, "blocks are not allowed here; write `key = { ... }`"))
            return
        for k, v in value.items():
            _check_literals(v, f"{key}.{k}" if key else str(k), file, problems)
    elif isinstance(value, list):
        if key and all(isinstance(v, dict) and v.get("__is_block__") for v in value) and value:
            problems.append(Problem(file, key, "blocks are not allowed here; write `key = { ... }`"))
            return
        for i, v in enumerate(value):
            _check_literals(v, f"{key}[{i}]", file, problems)
    elif isinstance(value, str) and "${" in value:
        problems.append(
            Problem(file, key, "expressions and interpolations are not allowed; use a literal value")
        )


def _what(exc: UnexpectedInput) -> str:
    if isinstance(exc, UnexpectedToken):
        if exc.token.type == "$END":
            return "end of file"
        return f"{str(exc.token).strip()[:30]!r} at column {exc.column}"
    if isinstance(exc, UnexpectedCharacters):
        return f"character {exc.char!r} at column {exc.column}"
    return f"input at column {exc.column}"
