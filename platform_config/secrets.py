"""Recognise values that look like credentials, in config files and in synthesized JSON."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

SECRET_KEY_NAME = re.compile(
    r"(^|_)(password|passwd|secret|secret_key|access_key|token|api_key|private_key|auth_token)$",
    re.IGNORECASE,
)

SECRET_VALUE_PATTERNS: dict[str, re.Pattern[str]] = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "Databricks personal access token": re.compile(r"\bdapi[0-9a-f]{32}(-\d)?\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "Slack token": re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}\b"),
}


def secret_kind(value: str) -> str | None:
    """Name of the credential ``value`` looks like, or None."""
    for kind, pattern in SECRET_VALUE_PATTERNS.items():
        if pattern.search(value):
            return kind
    return None


def find_secrets(data: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(key path, reason)`` for every secret-looking key or value in nested data."""
    if isinstance(data, dict):
        for k, v in data.items():
            sub = f"{path}.{k}" if path else str(k)
            if SECRET_KEY_NAME.search(str(k)) and isinstance(v, str) and v:
                yield sub, "looks like a secret (by its name)"
            else:
                yield from find_secrets(v, sub)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from find_secrets(v, f"{path}[{i}]")
    elif isinstance(data, str):
        kind = secret_kind(data)
        if kind:
            yield path, f"looks like a {kind}"
