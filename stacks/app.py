"""Build the stacks of the selected kinds and environments into a CDKTF app.

Each stack kind's module (and so its provider packages) is imported only when that kind is
built: synthesizing the Databricks stacks alone never loads the AWS provider.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterator
from contextlib import contextmanager

from cdktf import App

from constructs_lib import naming
from platform_config.loader import Environment
from stacks.base import PlatformStack

STACK_MODULES = {
    "bootstrap": ("stacks.bootstrap", "BootstrapStack"),
    "mlflow": ("stacks.mlflow", "MlflowStack"),
    "databricks": ("stacks.databricks", "DatabricksStack"),
}
assert tuple(STACK_MODULES) == naming.STACK_KINDS


@contextmanager
def gc_paused(enabled: bool = True) -> Iterator[None]:
    """Importing a jsii provider package creates ~10^6 long-lived objects; collecting while
    they are created is wasted work. Freeze them into the permanent generation afterwards."""
    if not enabled:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def stack_class(kind: str, pause_gc: bool = True) -> type[PlatformStack]:
    module_name, class_name = STACK_MODULES[kind]
    with gc_paused(pause_gc):
        module = importlib.import_module(module_name)
    cls: type[PlatformStack] = getattr(module, class_name)
    return cls


def build(
    app: App,
    envs: list[Environment],
    kinds: tuple[str, ...] = naming.STACK_KINDS,
    pause_gc: bool = True,
) -> list[PlatformStack]:
    """Add one stack per (kind, environment) to ``app``, kinds in deployment order."""
    stacks: list[PlatformStack] = []
    for kind in naming.STACK_KINDS:
        if kind not in kinds:
            continue
        cls = stack_class(kind, pause_gc)
        stacks.extend(cls(app, env) for env in envs)
    return stacks
