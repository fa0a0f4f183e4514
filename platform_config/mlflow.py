"""The ``mlflow = { ... }`` block of an environment's tfvars (MLflow platform stack)."""

from __future__ import annotations

from platform_config.types import Frozen


class MlflowSettings(Frozen):
    """Sizes and switches of the MLflow platform stack."""
