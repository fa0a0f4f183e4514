"""The synthesized ``cdk.tf.json`` is plain Terraform: init, plan and apply need no cdktf at all.

This is the exit path's safety net: whatever happens to the framework, the synthesized stack
directories stay usable with the terraform binary alone (``terraform init -backend-config=...``,
``plan``, ``apply``), so state is never hostage to a CDK.

Each test copies a synthesized stack directory aside and runs Terraform there with a PATH that
holds only Terraform and the system directories: no ``node_modules/.bin`` (the cdktf CLI), no
virtualenv (no Python that can import cdktf). Provider plugins cannot be downloaded here, so the
stack is the provider-free probe of tests/state/support.py: a real stack kind and environment
built with the project's backend code, whose resources are Terraform's built-in
``terraform_data``, with an output. What is proven is the provider-free part: the S3 backend
(against moto on 127.0.0.1), locking, state and outputs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from platform_config import naming
from platform_config.loader import BACKEND_DIR, load
from tests.state.support import (
    ENVS,
    MotoServer,
    backend,
    md5_hex,
    moto_server,
    server_environment,
    synth_probe,
    terraform_env,
)

__all__ = ["backend", "moto_server"]  # fixtures

pytestmark = pytest.mark.state

KIND = "mlflow"
REPO = Path(__file__).resolve().parents[2]


class PlainTerraform:
    """Terraform in one directory, with nothing of cdktf reachable."""

    def __init__(self, workdir: Path, tmp_path: Path) -> None:
        self.dir = workdir
        terraform = shutil.which("terraform")
        assert terraform is not None, "terraform is not on PATH"
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "terraform").symlink_to(terraform)
        self.env = terraform_env(tmp_path)
        for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "NODE_PATH"):
            self.env.pop(name, None)
        self.env["PATH"] = f"{bin_dir}:/usr/bin:/bin"

    def __call__(self, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["terraform", *args, "-no-color"],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode in ok, f"terraform {' '.join(args)}: {proc.returncode}\n{proc.stderr}"
        return proc

    def assert_no_cdktf(self) -> None:
        assert shutil.which("cdktf", path=self.env["PATH"]) is None, "the cdktf CLI is reachable"
        python = shutil.which("python3", path=self.env["PATH"])
        if python is not None and Path(python).resolve() != Path(sys.executable).resolve():
            probe = subprocess.run(
                [python, "-c", "import cdktf"], env=self.env, capture_output=True, check=False
            )
            assert probe.returncode != 0, f"{python} can import cdktf"

    def apply(self, value: str) -> None:
        self("apply", "-auto-approve", "-input=false", f"-var=round={value}")

    def outputs(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self("output", "-json").stdout)
        return result

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self("state", "pull").stdout)
        return result


def synthesized(tmp_path: Path, server: MotoServer, env: str) -> dict[str, Any]:
    """The probe stack as the app synthesizes it (in-process: synthesis does need cdktf)."""
    stack_dir = synth_probe(tmp_path / "synth", server_environment(env, server.url), KIND)
    assert sorted(p.name for p in stack_dir.iterdir()) == ["cdk.tf.json"]
    doc: dict[str, Any] = json.loads((stack_dir / "cdk.tf.json").read_text())
    return doc


def aside(tmp_path: Path, doc: dict[str, Any]) -> Path:
    """A directory holding nothing but the stack's JSON, far from cdktf.out and the repository."""
    workdir = tmp_path / "elsewhere" / naming.stack_id(KIND, "x")
    workdir.mkdir(parents=True)
    (workdir / "cdk.tf.json").write_text(json.dumps(doc, indent=2))
    return workdir


def hcl(value: object) -> str:
    """A backend setting as a partial-config value (strings, booleans, one level of maps)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {hcl(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def without_unset(config: Any) -> Any:
    """Terraform records every backend attribute, unset ones (nested too) as null."""
    if isinstance(config, dict):
        return {k: without_unset(v) for k, v in config.items() if v is not None}
    return config


@pytest.mark.parametrize("env", ENVS)
def test_synthesized_stack_runs_with_terraform_alone(backend: MotoServer, tmp_path: Path, env: str) -> None:
    doc = synthesized(tmp_path, backend, env)
    tf = PlainTerraform(aside(tmp_path, doc), tmp_path)
    tf.assert_no_cdktf()

    tf("init", "-input=false")
    tf("plan", "-input=false", "-detailed-exitcode", "-var=round=one", ok=(2,))
    tf.apply("one")
    assert tf.outputs()["round_written"]["value"] == {"round": "one"}
    tf("plan", "-input=false", "-detailed-exitcode", "-var=round=one")  # exit 0: nothing to change
    first = tf.state()
    tf.apply("two")
    second = tf.state()

    assert second["lineage"] == first["lineage"] and second["serial"] > first["serial"]
    stored = backend.state_object(env, KIND)
    assert stored is not None, "no state at the stack's key in its bucket"
    assert json.loads(stored)["outputs"]["round_written"]["value"] == {"round": "two"}
    assert not list(tf.dir.glob("*.tfstate")), "state was written locally, not to the backend"


@pytest.mark.parametrize("env", ENVS)
def test_partial_backend_block_completed_by_the_environment_config_file(
    backend: MotoServer, tmp_path: Path, env: str
) -> None:
    """A stack whose backend block holds only its key, completed at init by
    ``-backend-config=backend_configs/<env>.config`` (plus a test-only file for moto's endpoints),
    ends up with exactly the backend the app synthesizes from the same file."""
    doc = synthesized(tmp_path, backend, env)
    full = doc["terraform"]["backend"]["s3"]
    repo_file = REPO / BACKEND_DIR / f"{env}.config"
    [loaded] = load(REPO, [env])
    from_repo_file = set(loaded.backend.terraform_attributes())
    test_only = tmp_path / "moto.config"
    test_only.write_text(
        "".join(f"{k} = {hcl(v)}\n" for k, v in full.items() if k != "key" and k not in from_repo_file)
    )
    doc["terraform"]["backend"]["s3"] = {"key": full["key"]}
    tf = PlainTerraform(aside(tmp_path, doc), tmp_path)
    tf.assert_no_cdktf()

    tf("init", "-input=false", f"-backend-config={repo_file}", f"-backend-config={test_only}")
    tf.apply("one")

    initialized = json.loads((tf.dir / ".terraform" / "terraform.tfstate").read_text())["backend"]
    settings = without_unset(initialized["config"])
    assert initialized["type"] == "s3"
    assert settings == full, "init from the files differs from the backend the app synthesizes"
    stored = backend.state_object(env, KIND)
    assert stored is not None
    assert json.loads(stored)["outputs"]["round_written"]["value"] == {"round": "one"}
    lock_id = f"{naming.state_bucket(env)}/{naming.state_key(KIND)}"
    items = backend.lock_items(env)
    if "dynamodb_table" in full:
        assert items[f"{lock_id}-md5"]["Digest"]["S"] == md5_hex(stored)
    else:
        assert not items
    assert lock_id not in items and not backend.lockfile_present(env, KIND), "a lock was left behind"
