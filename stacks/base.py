"""What every stack of the platform shares: its name, environment, backend and tags."""

from __future__ import annotations

from typing import ClassVar

from cdktf import TerraformOutput, TerraformStack
from constructs import Construct

from constructs_lib.state_backend import local_backend, s3_backend
from platform_config import naming
from platform_config.loader import Environment


class PlatformStack(TerraformStack):
    """One stack kind in one environment, e.g. ``mlflow-prd``."""

    kind: ClassVar[str]

    def __init__(self, scope: Construct, env: Environment) -> None:
        super().__init__(scope, naming.stack_id(self.kind, env.name))
        self.env = env
        self.settings = env.settings
        if self.uses_local_state():
            local_backend(self, self.kind, env.name)
        else:
            s3_backend(self, env.backend.terraform_attributes(), self.kind)

    def uses_local_state(self) -> bool:
        """Only the bootstrap stack may live on local state (before its bucket exists)."""
        return False

    @property
    def tags(self) -> dict[str, str]:
        return naming.default_tags(self.env.name, self.kind, dict(self.settings.tags))

    def output(self, name: str, value: object, description: str, sensitive: bool = False) -> None:
        TerraformOutput(self, name, value=value, description=description, sensitive=sensitive)
