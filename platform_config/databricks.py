"""The ``databricks = { ... }`` block of an environment's tfvars (Databricks MLOps stack)."""

from __future__ import annotations

from platform_config.types import Frozen


class DatabricksSettings(Frozen):
    """Workspace, target and jobs of the Databricks MLOps stack."""
