"""Tearing down an environment's bootstrap, bucket -> local file (``state migrate --to local``).

The phase-1 local file stays on the machine that bootstrapped the environment. After more applies
on the bucket it is stale (bucket at serial N+1, local file at N): Terraform, asked to migrate to
the local backend, would silently take that file. The runbook's command refuses it, names the file
to move away, and otherwise copies the bucket's current state without a prompt (``TF_INPUT=0``).
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
from ops.state import BACKUP_DIR, bucket_backend, migrate, migrate_to_local
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


def _bootstrapped(backend: MotoServer, root: Path, tf_env: dict[str, str]) -> tuple[Path, bytes]:
    """Phase 1 on local state, phase 2 into the bucket, one more apply there.

    Returns the local state path (still the phase-1 file) and its bytes.
    """
    local_dir = synth_probe(root, server_environment(ENV, backend.url, bootstrap_state="local"), KIND)
    phase_one = Applier(local_dir, tf_env)
    phase_one.init()
    assert phase_one.apply(COMMITTED).returncode == 0
    local_state = root / naming.local_state_path(KIND, ENV)
    stack_dir = synth_probe(root, server_environment(ENV, backend.url, bootstrap_state="s3"), KIND)
    migrate(stack_dir, local_state, root / BACKUP_DIR, env=tf_env, plan=False, now=NOW)
    for value in ("after-the-migration", COMMITTED):
        result = Applier(stack_dir, tf_env).apply(value)
        assert result.returncode == 0, result.stderr
    return local_state, local_state.read_bytes()


def _back_to_local(backend: MotoServer, root: Path) -> Path:
    stack_dir = synth_probe(root, server_environment(ENV, backend.url, bootstrap_state="local"), KIND)
    assert list(json.loads((stack_dir / "cdk.tf.json").read_text())["terraform"]["backend"]) == ["local"]
    return stack_dir


def test_stale_phase_one_file_is_refused_then_the_bucket_state_is_copied(
    backend: MotoServer, tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    tf_env = {**terraform_env(tmp_path), "TF_INPUT": "0"}
    local_state, stale = _bootstrapped(backend, root, tf_env)
    in_bucket = state_info(backend.state_object(ENV, KIND).decode(), "bucket")  # type: ignore[union-attr]
    local = state_info(stale.decode(), "local")
    assert in_bucket.lineage == local.lineage
    assert in_bucket.serial > local.serial

    stack_dir = _back_to_local(backend, root)
    s3 = bucket_backend(server_environment(ENV, backend.url), KIND)
    with pytest.raises(CommandError, match=rf"{re.escape(str(local_state))} is a stale copy .*move .* away"):
        migrate_to_local(stack_dir, s3, local_state, root / BACKUP_DIR, env=tf_env, now=NOW)
    assert local_state.read_bytes() == stale, "the stale file was touched"

    # The operator moves it away, as the message says; then the copy is the bucket's state.
    shutil.move(local_state, root / BACKUP_DIR / "stale-phase-1.tfstate")
    result = migrate_to_local(stack_dir, s3, local_state, root / BACKUP_DIR, env=tf_env, now=NOW)
    assert not result.already_done
    assert result.plan_clean is True
    assert (result.after.lineage, result.after.serial) == (in_bucket.lineage, in_bucket.serial)
    assert local_state.read_bytes() == backend.state_object(ENV, KIND)
    assert result.backup.read_bytes() == local_state.read_bytes()

    # Terraform now works on the local file and continues the lineage.
    applier = Applier(stack_dir, tf_env)
    assert applier.apply("on-local-again").returncode == 0
    after, state = applier.pull()
    assert after.lineage == in_bucket.lineage
    assert after.serial > in_bucket.serial
    assert written_value(state) == "on-local-again"

    # A re-run now sees a local file that is newer than the bucket: refused, not overwritten.
    with pytest.raises(CommandError, match="has changes the bucket"):
        migrate_to_local(stack_dir, s3, local_state, root / BACKUP_DIR, env=tf_env, now=NOW)


def test_a_local_file_of_another_lineage_is_refused(backend: MotoServer, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    tf_env = terraform_env(tmp_path)
    local_state, _ = _bootstrapped(backend, root, tf_env)
    foreign = {"version": 4, "terraform_version": "1.11.4", "serial": 99, "lineage": "other", "outputs": {}}
    local_state.write_text(json.dumps(foreign))
    stack_dir = _back_to_local(backend, root)
    s3 = bucket_backend(server_environment(ENV, backend.url), KIND)
    with pytest.raises(CommandError, match="holds another state"):
        migrate_to_local(stack_dir, s3, local_state, root / BACKUP_DIR, env=tf_env)
    assert json.loads(local_state.read_text()) == foreign


def test_an_identical_local_file_is_accepted(backend: MotoServer, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    tf_env = terraform_env(tmp_path)
    local_state, _ = _bootstrapped(backend, root, tf_env)
    stored = backend.state_object(ENV, KIND)
    assert stored is not None
    local_state.write_bytes(stored)
    stack_dir = _back_to_local(backend, root)
    s3 = bucket_backend(server_environment(ENV, backend.url), KIND)
    result = migrate_to_local(stack_dir, s3, local_state, root / BACKUP_DIR, env=tf_env, plan=False)
    assert result.already_done
    assert local_state.read_bytes() == stored


def test_still_on_s3_is_refused(backend: MotoServer, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    stack_dir = synth_probe(root, server_environment(ENV, backend.url, bootstrap_state="s3"), KIND)
    s3 = bucket_backend(server_environment(ENV, backend.url), KIND)
    with pytest.raises(CommandError, match='set bootstrap_state = "local"'):
        migrate_to_local(stack_dir, s3, root / "x.tfstate", root / BACKUP_DIR, env=terraform_env(tmp_path))


def test_command_refuses_while_the_env_file_says_s3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "repo"
    shutil.copytree(ROOT / TFVARS_DIR, root / TFVARS_DIR)
    shutil.copytree(ROOT / BACKEND_DIR, root / BACKEND_DIR)
    assert cli.main(["--root", str(root), "state", "migrate", "--env", ENV, "--to", "local"]) == 2
    err = capsys.readouterr().err
    assert f'error: {TFVARS_DIR}/{ENV}.tfvars: bootstrap_state: is "s3"; set it to "local"' in err
    assert not (root / "cdktf.out").exists()
