"""The ``databricks = { ... }`` block of an environment's tfvars (Databricks MLOps stack)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from platform_config.types import Frozen

if TYPE_CHECKING:
    from platform_config.environment import EnvironmentSettings


class DatabricksSettings(Frozen):
    """Workspace, target and jobs of the Databricks MLOps stack."""

    def check(self, env: EnvironmentSettings) -> list[tuple[str, str]]:
        """Cross-field problems as ``(key under databricks, message)``; the loader adds the file."""
        return []
