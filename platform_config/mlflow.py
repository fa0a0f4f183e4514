"""The ``mlflow = { ... }`` block of an environment's tfvars (MLflow platform stack)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from platform_config.types import Frozen

if TYPE_CHECKING:
    from platform_config.environment import EnvironmentSettings


class MlflowSettings(Frozen):
    """Sizes and switches of the MLflow platform stack."""

    def check(self, env: EnvironmentSettings) -> list[tuple[str, str]]:
        """Cross-field problems as ``(key under mlflow, message)``; the loader adds the file."""
        return []
