"""Documentation placeholders: the example values the shipped files carry until a user supplies real ones.

One list for every stack. A placeholder synthesizes (the shipped files must), but deploying one
either fails late (an example workspace host fails on refresh) or, worse, works: an example CIDR
opens a load balancer to somebody else's network, an example cluster id re-points a production job
in place. ``ops synth`` warns about each finding; ``ops plan``/``ops deploy`` refuse the
environment before Terraform runs.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from platform_config.loader import Environment


@dataclass(frozen=True)
class Placeholder:
    """A kind of documentation value: ``matches`` says whether a setting's value is one."""

    what: str
    matches: Callable[[str], bool]


def _search(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern, re.IGNORECASE)
    return lambda value: compiled.search(value) is not None


# RFC 5737 (IPv4) and RFC 3849 (IPv6) documentation ranges.
DOCUMENTATION_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


def _in_documentation_network(value: str) -> bool:
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return False
    return any(
        network.version == doc.version and network.subnet_of(doc)  # type: ignore[arg-type]
        for doc in DOCUMENTATION_NETWORKS
    )


PLACEHOLDERS: tuple[Placeholder, ...] = (
    Placeholder(
        "example Databricks workspace host",
        _search(
            r"\badb-(1234567890123456|x+)\.[0-9x]+\.azuredatabricks\.net"
            r"|\bdbc-a1b2c3d4-e5f6\.cloud\.databricks\.com"
            r"|\b1234567890123456\.\d+\.gcp\.databricks\.com"
            r"|\byour-[a-z0-9-]*workspace\."
        ),
    ),
    Placeholder(
        "example Databricks cluster id",
        _search(
            r"^(0419-175415-rag0prod|1234-567890-reef123|0923-164208-meows279|0101-000000-\w+|0123-456789-\w+)$"
        ),
    ),
    # AWS's documentation accounts, inside an ARN or on their own.
    Placeholder("example AWS account id", _search(r"(^|:)(111122223333|123456789012|000000000000)(:|$)")),
    # The AMI id of AWS's own documentation: a real one is published per region (docs/stacks/mlflow.md).
    Placeholder("example AMI id", _search(r"^ami-0abcdef1234567890$")),
    Placeholder("repeated-digit UUID", _search(r"\b([0-9a-f])\1{7}-\1{4}-\1{4}-\1{4}-\1{12}\b")),
    Placeholder("documentation IP range (RFC 5737/3849)", _in_documentation_network),
    Placeholder("example domain (RFC 2606)", _search(r"(@|^|\.|//)example\.(com|org|net)\b")),
)


def placeholder_kind(value: str) -> str | None:
    """What kind of documentation placeholder ``value`` is, or None for a real-looking value."""
    return next((p.what for p in PLACEHOLDERS if p.matches(value)), None)


@dataclass(frozen=True)
class Finding:
    file: str
    key: str
    value: str
    what: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: placeholder value {self.value!r} ({self.what})"


def _strings(value: Any, key: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _strings(v, f"{key}[{i}]")


def find(env: Environment) -> list[Finding]:
    """Every setting of ``env`` that still holds a documentation placeholder, as tfvars keys."""
    settings = env.settings.model_dump(by_alias=True, mode="json")
    return [
        Finding(env.tfvars_file, key, value, what)
        for key, value in _strings(settings, "")
        if (what := placeholder_kind(value)) is not None
    ]


# Where to read what a real value looks like, by the key's first part (docs/configuration.md for
# the rest): each stack's page says what to supply.
_DOCS = {
    "mlflow": "docs/stacks/mlflow.md",
    "network": "docs/stacks/mlflow.md",
    "databricks": "docs/stacks/databricks.md",
    "state_bucket": "docs/stacks/bootstrap.md",
}


def doc_for(key: str) -> str:
    """The page that says what to supply for tfvars ``key``."""
    return _DOCS.get(key.split(".", 1)[0].split("[", 1)[0], "docs/configuration.md")


def summary(findings: list[Finding]) -> list[str]:
    """One line per file: how many placeholders, in which keys' documentation to look."""
    by_file: dict[str, list[Finding]] = {}
    for finding in findings:
        by_file.setdefault(finding.file, []).append(finding)
    return [
        f"{file}: {len(found)} documentation placeholder(s) (plan and deploy refuse them; what to "
        f"supply: {', '.join(sorted({doc_for(f.key) for f in found}))})"
        for file, found in by_file.items()
    ]
