"""A new environment's two files, derived from an existing one's.

Copying ``dev.tfvars`` by hand keeps dev's Databricks target (the new stack would manage dev's
model, experiment and jobs) and its CIDRs. ``add`` writes ``env_specific_vars/NEW.tfvars`` and
``backend_configs/NEW.config`` with every name of the new environment: ``environment``, the
backend's bucket, lock table and KMS alias, tag values naming the old environment,
``bootstrap_state = "local"`` (its bucket does not exist yet), the Databricks target ``NEW``
(catalog, job prefix, experiment and files paths then follow from it), and the next free VPC
range with every subnet moved into it, and ``ci.oidc_provider = "existing"`` where the source
creates the account's GitHub OIDC provider (an account has one: a copy in the same account must not
create it again; the line says what to write for an account of its own). Comments and layout stay
as in the source; comments naming the old environment name the new one, except the sentences about
who creates the OIDC provider, which a copy would make false. The result is loaded with every other environment
before ``add`` returns; on any problem both files are removed again.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from ops.runner import UsageError
from platform_config import naming
from platform_config.errors import ConfigError
from platform_config.loader import BACKEND_DIR, BACKEND_SUFFIX, TFVARS_DIR, TFVARS_SUFFIX, load, select

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_QUOTED = re.compile(r'"([^"\\]*)"')
_ATTRIBUTE = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)(.*)$")
# Databricks keys whose defaults follow the target: dropped so the new target names them.
_FOLLOW_THE_TARGET = {"catalog", "job_name_prefix", "experiment_path", "files_root"}


def next_free_network(source: Network, taken: Iterable[Network]) -> Network:
    """The first network of ``source``'s size after it that overlaps none of ``taken``."""
    taken = list(taken)
    size = source.num_addresses
    for step in range(1, 4096):
        address = int(source.network_address) + step * size
        try:
            candidate = ipaddress.ip_network((address, source.prefixlen))
        except ValueError:
            break
        if candidate.is_private and not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise UsageError(f"no free private network of size /{source.prefixlen} after {source}")


def _lines_by_block(text: str) -> list[tuple[str, int, str]]:
    """Each line with the top-level block it is in ("" at the top) and its depth in it."""
    out: list[tuple[str, int, str]] = []
    block, depth = "", 0
    for line in text.splitlines(keepends=True):
        out.append((block, depth, line))
        code = _QUOTED.sub('""', line.split("#", 1)[0])
        if depth == 0 and (m := _ATTRIBUTE.match(code)) and "{" in code:
            block = m.group(2)
        depth += code.count("{") - code.count("}")
        if depth <= 0:
            block, depth = "", 0
    return out


def _set_value(line: str, value: str) -> str:
    m = _ATTRIBUTE.match(line.rstrip("\n"))
    assert m is not None
    return f'{m.group(1)}{m.group(2)}{m.group(3)}"{value}"\n'


def _key(line: str) -> str:
    m = _ATTRIBUTE.match(line)
    return m.group(2) if m else ""


def derive_tfvars(text: str, old: str, new: str, old_vpc: Network, new_vpc: Network) -> str:
    """``old``'s tfvars text rewritten for environment ``new`` (see the module docstring)."""
    shift = int(new_vpc.network_address) - int(old_vpc.network_address)

    def move(match: re.Match[str]) -> str:
        try:
            net = ipaddress.ip_network(match.group(1))
        except ValueError:
            return match.group(0)
        if not net.subnet_of(old_vpc):  # type: ignore[arg-type]
            return match.group(0)
        return f'"{ipaddress.ip_network((int(net.network_address) + shift, net.prefixlen))}"'

    word = re.compile(rf"\b{re.escape(old)}\b")
    creates_provider = re.search(r'(?m)^\s*oidc_provider\s*=\s*"create"', text) is not None
    out: list[str] = []
    for block, depth, line in _lines_by_block(text):
        key = _key(line)
        if line.lstrip().startswith("#") and creates_provider and "OIDC provider" in line:
            kept = [s for s in re.split(r"(?<=\.) ", line.rstrip("\n")) if "OIDC provider" not in s]
            if kept and kept[0].strip() not in ("", "#"):
                out.append(word.sub(new, " ".join(kept)) + "\n")
        elif line.lstrip().startswith("#"):
            out.append(word.sub(new, line))
        elif block == "ci" and key == "oidc_provider" and creates_provider:
            indent = line[: len(line) - len(line.lstrip())]
            out.append(
                f"{indent}# {old}'s bootstrap creates the account's GitHub OIDC provider; \"create\" in an\n"
            )
            out.append(f"{indent}# account of its own\n")
            out.append(f'{indent}oidc_provider = "existing"\n')
        elif block == "" and key == "environment":
            out.append(_set_value(line, new))
        elif block == "" and key == "bootstrap_state":
            out.append(_set_value(line, "local"))
        elif block == "tags" and key:
            value_at = line.index("=")
            out.append(line[:value_at] + word.sub(new, line[value_at:]))
        elif block == "network":
            out.append(_QUOTED.sub(move, line))
        elif block == "databricks" and depth == 1 and key == "target":
            out.append(_set_value(line, new))
        elif block == "databricks" and depth == 1 and key in _FOLLOW_THE_TARGET:
            continue
        else:
            out.append(line)
    return "".join(out)


def derive_backend(text: str, old: str, new: str) -> str:
    """``old``'s backend config text with ``new``'s bucket, lock table and KMS alias."""
    values: dict[str, Callable[[str], str]] = {
        "bucket": naming.state_bucket,
        "dynamodb_table": naming.lock_table,
        "kms_key_id": naming.state_kms_alias,
    }
    word = re.compile(rf"\b{re.escape(old)}\b")
    out = []
    for _, _, line in _lines_by_block(text):
        key = _key(line)
        if line.lstrip().startswith("#"):
            out.append(word.sub(new, line))
        elif key in values:
            out.append(_set_value(line, values[key](new)))
        else:
            out.append(line)
    return "".join(out)


def add(root: Path, new: str, source: str) -> tuple[Path, Path]:
    """Write ``new``'s two files under ``root`` from ``source``'s; both validated with the rest."""
    if not naming.ENV_NAME_RE.match(new):
        raise UsageError(
            f"{new!r}: an environment name is 2-8 lowercase letters or digits, starting with a letter"
        )
    envs = load(root)
    if new in {e.name for e in envs}:
        raise UsageError(f"environment {new!r} exists already ({TFVARS_DIR}/{new}{TFVARS_SUFFIX})")
    [base] = select(envs, [source], "--from")
    old_vpc = ipaddress.ip_network(base.settings.network.vpc_cidr)
    new_vpc = next_free_network(old_vpc, (ipaddress.ip_network(e.settings.network.vpc_cidr) for e in envs))
    tfvars = root / TFVARS_DIR / f"{new}{TFVARS_SUFFIX}"
    backend = root / BACKEND_DIR / f"{new}{BACKEND_SUFFIX}"
    tfvars.write_text(
        derive_tfvars((root / base.tfvars_file).read_text(encoding="utf-8"), source, new, old_vpc, new_vpc)
    )
    backend.write_text(derive_backend((root / base.backend_file).read_text(encoding="utf-8"), source, new))
    try:
        load(root, [new])
    except ConfigError:
        tfvars.unlink()
        backend.unlink()
        raise
    return tfvars, backend
