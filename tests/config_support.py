"""Helpers to run the config layer on the shipped files with one thing changed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from platform_config.errors import ConfigError, Problem
from platform_config.loader import BACKEND_DIR, TFVARS_DIR, Environment, load_environments, read_config_dir
from tests.conftest import ROOT


@dataclass
class ConfigFiles:
    """The repository's environment files as text, ready to be broken one way or another."""

    tfvars: dict[str, str] = field(default_factory=lambda: read_config_dir(ROOT, TFVARS_DIR))
    backends: dict[str, str] = field(default_factory=lambda: read_config_dir(ROOT, BACKEND_DIR))

    def sub(self, path: str, pattern: str, replacement: str, count: int = 1) -> ConfigFiles:
        files = self.tfvars if path.startswith(TFVARS_DIR) else self.backends
        new, n = re.subn(pattern, replacement, files[path], count=count, flags=re.MULTILINE)
        assert n, f"pattern {pattern!r} not found in {path}"
        files[path] = new
        return self

    def append(self, path: str, text: str) -> ConfigFiles:
        files = self.tfvars if path.startswith(TFVARS_DIR) else self.backends
        files[path] = files[path] + "\n" + text + "\n"
        return self

    def load(self) -> list[Environment]:
        return load_environments(self.tfvars, self.backends)

    def problems(self) -> list[Problem]:
        try:
            self.load()
        except ConfigError as exc:
            return exc.problems
        raise AssertionError("expected a ConfigError")


def add_environment(files: ConfigFiles, name: str, second_octet: int) -> ConfigFiles:
    """Derive a new environment from dev's two files: the README's 'adding an environment'."""
    tfvars = files.tfvars[f"{TFVARS_DIR}/dev.tfvars"]
    tfvars = tfvars.replace('environment   = "dev"', f'environment   = "{name}"')
    tfvars = tfvars.replace("10.10.", f"10.{second_octet}.").replace("ml-dev", f"ml-{name}")
    backend = files.backends[f"{BACKEND_DIR}/dev.config"].replace("-dev-", f"-{name}-")
    files.tfvars[f"{TFVARS_DIR}/{name}.tfvars"] = tfvars
    files.backends[f"{BACKEND_DIR}/{name}.config"] = backend
    return files
