"""``databricks-<env>``: the Databricks side of the MLOps platform (placeholder)."""

from __future__ import annotations

from cdktf_cdktf_provider_databricks.provider import DatabricksProvider
from constructs import Construct

from platform_config.loader import Environment
from stacks.base import PlatformStack


class DatabricksStack(PlatformStack):
    kind = "databricks"

    def __init__(self, scope: Construct, env: Environment) -> None:
        super().__init__(scope, env)
        DatabricksProvider(self, "databricks")
