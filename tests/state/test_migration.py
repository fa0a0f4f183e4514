"""The two-phase bootstrap, phase 1 on local state, migrated by ``ops state migrate``'s code.

The stack is a probe stack of kind ``bootstrap`` (the real one needs the AWS provider plugin): its
backend is chosen by ``BootstrapStack.uses_local_state`` from the env file's ``bootstrap_state``,
and built by ``local_backend``/``s3_backend``, exactly as for the real stack.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ops import cli
from ops.runner import CommandError, state_info
from ops.state import backend_only, migrate
from platform_config import naming
from platform_config.loader import BACKEND_DIR, TFVARS_DIR
from tests.conftest import ROOT
from tests.state.support import (
    COMMITTED,
    Applier,
    MotoServer,
    server_environment,
    synth_probe,
    terraform_env,
    written_value,
)

pytestmark = pytest.mark.state

ENV = "dev"
KIND = "bootstrap"
NOW = datetime(2026, 11, 24, 1, 2, 3, tzinfo=UTC)


def _phase_one(backend: MotoServer, root: Path) -> tuple[Applier, Path]:
    """Synthesize with bootstrap_state = "local" and apply twice; returns the applier and state file."""
    stack_dir = synth_probe(root, server_environment(ENV, backend.url, bootstrap_state="local"), KIND)
    synthesized = json.loads((stack_dir / "cdk.tf.json").read_text())["terraform"]["backend"]
    assert synthesized == {"local": {"path": f"../../../{naming.local_state_path(KIND, ENV)}"}}
    applier = Applier(stack_dir, terraform_env(root))
    applier.init()
    for value in ("phase-1-a", COMMITTED):
        result = applier.apply(value)
        assert result.returncode == 0, result.stderr
    local_state = root / naming.local_state_path(KIND, ENV)
    assert local_state.is_file()
    assert backend.state_object(ENV, KIND) is None
    return applier, local_state


def _phase_two(backend: MotoServer, root: Path) -> Path:
    """Flip the switch to "s3" and synthesize again into the same cdktf.out."""
    stack_dir = synth_probe(root, server_environment(ENV, backend.url, bootstrap_state="s3"), KIND)
    assert list(json.loads((stack_dir / "cdk.tf.json").read_text())["terraform"]["backend"]) == ["s3"]
    return stack_dir


@pytest.mark.parametrize("fresh_checkout", [False, True], ids=["terraform-dir-kept", "fresh-checkout"])
def test_bootstrap_migration_keeps_lineage_and_serial(
    backend: MotoServer, tmp_path: Path, fresh_checkout: bool
) -> None:
    root = tmp_path / "repo"
    applier, local_state = _phase_one(backend, root)
    original = local_state.read_bytes()
    before = state_info(original.decode(), "local state")
    assert before.serial >= 2

    stack_dir = _phase_two(backend, root)
    if fresh_checkout:
        # cdktf.out deleted and synthesized again: Terraform no longer records the local backend.
        shutil.rmtree(stack_dir / ".terraform")
    env = terraform_env(tmp_path)
    result = migrate(stack_dir, local_state, root / "local_state" / "backups", env=env, now=NOW)

    assert result.before == before
    assert result.after.lineage == before.lineage
    assert result.after.serial >= before.serial
    assert not result.already_done
    assert result.backup == root / "local_state" / "backups" / "bootstrap-dev.20261124T010203Z.tfstate"
    assert result.backup.read_bytes() == original
    assert result.plan_clean is True
    assert not (stack_dir / "terraform.tfstate").exists()

    stored = backend.state_object(ENV, KIND)
    assert stored is not None
    assert state_info(stored.decode(), "bucket").lineage == before.lineage
    # Checked independently of the script: no changes, and the next apply continues the lineage.
    plan = applier.tf.run("plan", "-detailed-exitcode", "-input=false", "-no-color", check=False)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert applier.apply("phase-2").returncode == 0
    after, state = applier.pull()
    assert (after.lineage, after.serial) == (before.lineage, result.after.serial + 1)
    assert written_value(state) == "phase-2"

    # Running it again is harmless: it must not copy the now-stale local file over the bucket.
    again = migrate(stack_dir, local_state, root / "local_state" / "backups", env=env, now=NOW)
    assert again.already_done
    assert again.after == after
    assert again.backup != result.backup


def test_migration_refuses_to_overwrite_a_different_state(backend: MotoServer, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _applier, local_state = _phase_one(backend, root)
    stack_dir = _phase_two(backend, root)
    foreign = json.dumps(
        {"version": 4, "terraform_version": "1.11.4", "serial": 40, "lineage": "0000-other", "outputs": {}}
    ).encode()
    backend.put_state(ENV, KIND, foreign)

    with pytest.raises(CommandError, match="already holds a different state"):
        migrate(stack_dir, local_state, root / "local_state" / "backups", env=terraform_env(tmp_path))
    assert backend.state_object(ENV, KIND) == foreign


def _interrupted_copy(stack_dir: Path, state_file: Path, tf_env: dict[str, str]) -> None:
    """What an ``init -migrate-state`` that failed after its copy leaves in the bucket: the file's
    content under a new lineage (the first write at an empty key gets one)."""
    with backend_only(stack_dir, tf_env) as tf:
        tf.run("state", "push", str(state_file))


def test_migration_resumes_its_own_interrupted_copy(backend: MotoServer, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _applier, local_state = _phase_one(backend, root)
    before = state_info(local_state.read_text(), "local state")
    stack_dir = _phase_two(backend, root)
    tf_env = terraform_env(tmp_path)
    _interrupted_copy(stack_dir, local_state, tf_env)
    partial = state_info(backend.state_object(ENV, KIND).decode(), "bucket")  # type: ignore[union-attr]
    assert partial.lineage != before.lineage

    result = migrate(stack_dir, local_state, root / "local_state" / "backups", env=tf_env, now=NOW)
    assert result.lineage_restored
    assert not result.already_done
    assert result.after.lineage == before.lineage
    assert result.after.serial > before.serial
    assert result.plan_clean is True
    stored = state_info(backend.state_object(ENV, KIND).decode(), "bucket")  # type: ignore[union-attr]
    assert stored == result.after


def test_migration_refuses_a_new_lineage_copy_with_other_content(backend: MotoServer, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _applier, local_state = _phase_one(backend, root)
    stack_dir = _phase_two(backend, root)
    tf_env = terraform_env(tmp_path)
    changed = json.loads(local_state.read_text())
    changed["outputs"]["round_written"]["value"]["round"] = "applied-on-the-copy"
    other = tmp_path / "changed.tfstate"
    other.write_text(json.dumps(changed))
    _interrupted_copy(stack_dir, other, tf_env)
    stored = backend.state_object(ENV, KIND)

    with pytest.raises(CommandError, match=r"already holds a different state.*docs/runbooks/bootstrap\.md"):
        migrate(stack_dir, local_state, root / "local_state" / "backups", env=tf_env)
    assert backend.state_object(ENV, KIND) == stored


def test_migration_refuses_a_stack_still_on_local_state(backend: MotoServer, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    applier, local_state = _phase_one(backend, root)
    with pytest.raises(CommandError, match='set bootstrap_state = "s3"'):
        migrate(applier.dir, local_state, root / "local_state" / "backups", env=terraform_env(tmp_path))


def _repo_copy(tmp_path: Path, bootstrap_state: str) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(ROOT / TFVARS_DIR, root / TFVARS_DIR)
    shutil.copytree(ROOT / BACKEND_DIR, root / BACKEND_DIR)
    path = root / TFVARS_DIR / f"{ENV}.tfvars"
    text, n = re.subn(
        r'^bootstrap_state\s*=\s*"\w+"',
        f'bootstrap_state = "{bootstrap_state}"',
        path.read_text(),
        flags=re.M,
    )
    assert n == 1
    path.write_text(text)
    return root


def _migrate_command(root: Path, *argv: str) -> int:
    """``python -m ops --root <root> state migrate <argv>``; argparse's usage errors exit 2 too."""
    try:
        return cli.main(["--root", str(root), "state", "migrate", *argv])
    except SystemExit as exc:
        return int(exc.code or 0)


def test_command_refuses_while_the_env_file_says_local(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _repo_copy(tmp_path, "local")
    assert _migrate_command(root, "--env", ENV) == 2
    err = capsys.readouterr().err
    assert f"error: {TFVARS_DIR}/{ENV}.tfvars: bootstrap_state:" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [[], ["--env", "nope"], ["--env", ENV, "extra"]])
def test_command_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    root = _repo_copy(tmp_path, "s3")
    assert _migrate_command(root, *argv) == 2
    assert capsys.readouterr().err.strip()


def test_command_refuses_without_local_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _repo_copy(tmp_path, "s3")
    assert _migrate_command(root, "--env", ENV) == 1
    err = capsys.readouterr().err
    assert f"no local state at {naming.local_state_path(KIND, ENV)}" in err
    assert not (root / "cdktf.out").exists(), "synthesized although there is nothing to migrate"
