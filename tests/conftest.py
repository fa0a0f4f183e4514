"""Shared fixtures. Synthesis is expensive (the AWS provider package alone costs ~10 s and
~1 GB to import), so the whole app is synthesized once per test session and shared."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CHECKPOINT_DISABLE", "1")

from platform_config import naming
from platform_config.loader import BACKEND_DIR, TFVARS_DIR, Environment, load_environments, read_config_dir

# Installs the lazy provider import hook and pauses the GC while tests are collected.
pytest_plugins = ["tests.perf_plugin"]

ROOT = Path(__file__).resolve().parent.parent


def shipped_env_names(root: Path = ROOT) -> list[str]:
    """The environments that exist in the repository (one per tfvars file): tests over shipped
    environments parametrize over this, so a new environment is tested with no test edit."""
    return sorted(p.stem for p in (root / TFVARS_DIR).glob("*.tfvars"))


def scratch_env_name(root: Path = ROOT, prefix: str = "t") -> str:
    """A name for an environment a test adds: generated, so that it never equals a name a user
    might give (or has given) an environment; valid (2-8 lowercase letters or digits) and not a
    Databricks target name either."""
    taken = set(shipped_env_names(root)) | {"test", "staging", "prod"}
    for _ in range(100):
        name = prefix + secrets.token_hex(4)[: 8 - len(prefix)]
        if name not in taken and naming.ENV_NAME_RE.match(name):
            return name
    raise RuntimeError("no free scratch environment name")


def load_repo_environments(root: Path = ROOT) -> list[Environment]:
    return load_environments(read_config_dir(root, TFVARS_DIR), read_config_dir(root, BACKEND_DIR))


@dataclass
class Synthesized:
    """The synthesized app: one parsed ``cdk.tf.json`` per stack."""

    outdir: Path
    envs: list[Environment]
    _cache: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.outdir / "manifest.json").read_text())
        return data

    def env(self, name: str) -> Environment:
        return next(e for e in self.envs if e.name == name)

    def stack_names(self) -> list[str]:
        return sorted(self.manifest["stacks"])

    def stack(self, name: str) -> dict[str, Any]:
        if name not in self._cache:
            path = self.outdir / self.manifest["stacks"][name]["synthesizedStackPath"]
            self._cache[name] = json.loads(path.read_text())
        return self._cache[name]

    def stack_dir(self, name: str) -> Path:
        return self.outdir / "stacks" / name

    def resources(self, name: str, rtype: str) -> dict[str, Any]:
        """``resource.<rtype>`` of a stack: address name -> attributes."""
        out: dict[str, Any] = self.stack(name).get("resource", {}).get(rtype, {})
        return out


# A per-environment assertion over a synthesized app: the shipped-environment tests and the
# "add an environment" test (tests/stacks/test_new_environment.py) run the same ones.
Check = Callable[[Synthesized, Environment], None]


def synthesize(
    envs: list[Environment], outdir: Path, kinds: tuple[str, ...] = naming.STACK_KINDS
) -> Synthesized:
    """Synthesize in this process (provider modules are imported once per session)."""
    from cdktf import App

    from stacks.app import build

    app = App(outdir=str(outdir))
    build(app, envs, kinds)
    app.synth()
    return Synthesized(outdir, envs)


@pytest.fixture(scope="session")
def repo_envs() -> list[Environment]:
    return load_repo_environments()


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory, repo_envs: list[Environment]) -> Synthesized:
    """Every stack of every shipped environment, synthesized once for the whole session."""
    return synthesize(repo_envs, tmp_path_factory.mktemp("synth") / "cdktf.out")


@pytest.fixture(scope="session")
def synth_with(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[list[Environment], tuple[str, ...]], Synthesized]]:
    """Synthesize another set of environments in-process (e.g. a temporary fourth one)."""

    def run(envs: list[Environment], kinds: tuple[str, ...] = naming.STACK_KINDS) -> Synthesized:
        return synthesize(envs, tmp_path_factory.mktemp("synth-extra") / "cdktf.out", kinds)

    yield run
