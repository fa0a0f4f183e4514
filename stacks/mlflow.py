"""``mlflow-<env>``: the MLflow tracking server and model registry on AWS (placeholder)."""

from __future__ import annotations

from constructs import Construct

from constructs_lib.aws_provider import aws_provider
from platform_config.loader import Environment
from stacks.base import PlatformStack


class MlflowStack(PlatformStack):
    kind = "mlflow"

    def __init__(self, scope: Construct, env: Environment) -> None:
        super().__init__(scope, env)
        aws_provider(self, self.settings.aws_region, self.tags)
