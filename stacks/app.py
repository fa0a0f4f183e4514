"""Build the stacks of the selected kinds and environments, and synthesize them: the one synthesis
function of the project (``main.py``, the operations CLI and the tests call it).

Each stack kind's module (and so its provider packages) is imported only when that kind is
built: synthesizing the Databricks stacks alone never loads the AWS provider. The new output
replaces ``outdir`` only once synthesis succeeded; each stack's ``.terraform`` and lock file are
carried over.
"""

from __future__ import annotations

import gc
import importlib
import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from cdktf import App

from platform_config import naming
from platform_config.loader import Environment
from stacks import provider_import
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
    provider_import.install()
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
    """Add one stack per (kind, environment) to ``app``, kinds in deployment order.

    Every other stack keeps its state in the bucket of its environment's bootstrap stack: when
    both are built, it depends on it, so cdktf deploys the bootstrap stack first.
    """
    stacks: list[PlatformStack] = []
    bootstraps: dict[str, PlatformStack] = {}
    for kind in naming.STACK_KINDS:
        if kind not in kinds:
            continue
        cls = stack_class(kind, pause_gc)
        for env in envs:
            stack = cls(app, env)
            if kind == "bootstrap":
                bootstraps[env.name] = stack
            elif env.name in bootstraps:
                stack.add_dependency(bootstraps[env.name])
            stacks.append(stack)
    return stacks


# Per-stack files that belong to Terraform, not to synthesis: kept across re-synthesis.
KEEP_IN_STACK_DIR = (".terraform", ".terraform.lock.hcl")


def synthesize(
    envs: Sequence[Environment],
    kinds: tuple[str, ...] = naming.STACK_KINDS,
    outdir: Path = Path("cdktf.out"),
    pause_gc: bool = True,
) -> Path:
    """Synthesize into a fresh directory next to ``outdir``, then swap it in; returns ``outdir``."""
    outdir = outdir.resolve()
    outdir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.new-", dir=outdir.parent))
    try:
        app = App(outdir=str(staging))
        build(app, list(envs), kinds, pause_gc)
        app.synth()
        _carry_over_terraform_files(outdir, staging)
        if outdir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.old-", dir=outdir.parent))
            outdir.rename(old / "out")
            staging.rename(outdir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(outdir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return outdir


def _carry_over_terraform_files(old_out: Path, new_out: Path) -> None:
    old_stacks = old_out / "stacks"
    if not old_stacks.is_dir():
        return
    for stack_dir in old_stacks.iterdir():
        target = new_out / "stacks" / stack_dir.name
        if not target.is_dir():
            continue
        for name in KEEP_IN_STACK_DIR:
            if (stack_dir / name).exists():
                (stack_dir / name).rename(target / name)


def summary(outdir: Path) -> str:
    """One line per synthesized stack: stack, environment, resources, backend, state key or path."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    rows = []
    for name, stack in sorted(manifest["stacks"].items(), key=lambda kv: _order(kv[0])):
        doc = json.loads((outdir / stack["synthesizedStackPath"]).read_text())
        resources = sum(len(v) for v in doc.get("resource", {}).values())
        backend_type, backend = next(iter(doc["terraform"]["backend"].items()))
        where = backend.get("key") or backend.get("path")
        _kind, env = naming.parse_stack_id(name)
        rows.append((name, env, str(resources), backend_type, where))
    header = ("stack", "env", "resources", "backend", "state")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.append(f"{len(rows)} stacks synthesized to {outdir}")
    return "\n".join(lines)


def _order(stack_name: str) -> tuple[int, str]:
    kind, env = naming.parse_stack_id(stack_name)
    return naming.STACK_KINDS.index(kind), env
