"""Where a stack keeps its Terraform state: the environment's S3 backend, or a local file.

No provider import: every stack kind uses this.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cdktf import LocalBackend, S3Backend, TerraformStack

from platform_config import naming

# cdktf.out/stacks/<stack>/ is where Terraform runs; local state lives at the repository root.
_STACK_DIR_TO_ROOT = "../../.."


def s3_backend(stack: TerraformStack, attributes: Mapping[str, Any], kind: str) -> S3Backend:
    """The environment's S3 backend from its partial config file's ``attributes``, plus the
    stack's own key."""
    attrs = dict(attributes)
    use_lockfile = attrs.pop("use_lockfile", None)
    backend = S3Backend(stack, key=naming.state_key(kind), **attrs)
    if use_lockfile is not None:
        # CDKTF 0.21's S3Backend predates S3-native locking (Terraform >= 1.10).
        backend.add_override("use_lockfile", use_lockfile)
    return backend


def local_backend(stack: TerraformStack, kind: str, env: str) -> LocalBackend:
    """An explicit local backend, outside cdktf.out so re-synthesis never touches the state."""
    return LocalBackend(stack, path=f"{_STACK_DIR_TO_ROOT}/{naming.local_state_path(kind, env)}")
