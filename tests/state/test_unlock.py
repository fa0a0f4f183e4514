"""A killed apply leaves its lock behind; the scripted force-unlock runbook releases it.

The apply is SIGKILLed while it holds the lock (inside its ``local-exec`` sleep), as when a CI
runner dies: Terraform gets no chance to release the lock, which stays in the lock table and/or
as the ``.tflock`` object. ``ops state unlock`` must refuse a wrong lock ID, release the
right one, and leave the state exactly as it was.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from ops import cli
from ops import state as runbook
from ops.runner import CommandError
from tests.state.support import (
    ENVS,
    LOCK_ERROR,
    SEED_STATE,
    Applier,
    MotoServer,
    server_environment,
    synth_probe,
    terraform_env,
    written_value,
)

pytestmark = pytest.mark.state

KIND = "mlflow"


@pytest.mark.parametrize("env", ENVS)
def test_killed_apply_lock_is_released_by_the_runbook(
    backend: MotoServer,
    tmp_path: Path,
    env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "repo"
    stack_dir = synth_probe(root, server_environment(env, backend.url), KIND)
    tf_env = terraform_env(tmp_path)
    applier = Applier(stack_dir, tf_env)
    applier.init()
    assert applier.apply("before-crash").returncode == 0
    before, _ = applier.pull()
    stored_before = backend.state_object(env, KIND)

    doomed = applier.start_apply("never-written", hold=60)
    applier.wait_until_holding(doomed)
    assert backend.is_locked(env, KIND)
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=10)

    # The lock outlived its holder: every further run is refused.
    refused = applier.apply("blocked")
    assert refused.returncode != 0
    assert LOCK_ERROR in refused.stderr
    holder = runbook.lock_holder(stack_dir, env=tf_env)
    assert holder is not None
    assert holder.operation == "OperationTypeApply"
    assert holder.id in refused.stderr

    with pytest.raises(CommandError, match="not 00000000"):
        runbook.force_unlock(stack_dir, "00000000-0000-0000-0000-000000000000", env=tf_env)
    assert backend.is_locked(env, KIND)

    # The runbook as a user runs it (`make state-unlock ENV= STACK= [LOCK_ID=]`).
    for key, value in tf_env.items():
        monkeypatch.setenv(key, value)
    unlock = ["--root", str(root), "state", "unlock", "--env", env, "--stack", KIND]
    assert cli.main(unlock) == 0
    shown = capsys.readouterr().out
    assert f"LOCK_ID={holder.id}" in shown
    assert cli.main([*unlock, "--lock-id", holder.id]) == 0
    released = capsys.readouterr().out
    assert f"released the lock ID {holder.id}" in released
    assert f"state intact: lineage {before.lineage}, serial {before.serial}" in released
    assert not backend.is_locked(env, KIND)

    # Intact and usable: same lineage and serial as before the crash, next apply continues it.
    after, state = applier.pull()
    assert after == before
    assert backend.state_object(env, KIND) == stored_before
    assert written_value(state) == "before-crash"
    assert applier.apply("after-unlock").returncode == 0
    final, _ = applier.pull()
    assert (final.lineage, final.serial) == (before.lineage, before.serial + 1)

    # Unlocking a free state is a no-op, not an error.
    again = runbook.force_unlock(stack_dir, holder.id, env=tf_env)
    assert again.holder is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "dev"], "the following arguments are required: --stack"),
        (["--env", "dev", "--stack", "nosuchkind"], "invalid choice: 'nosuchkind'"),
    ],
)
def test_runbook_usage(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["state", "unlock", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_runbook_takes_the_state_providers_from_the_stack_never_a_registry(
    backend: MotoServer, tmp_path: Path
) -> None:
    """``init`` installs every provider the state names, even in a backend-only directory. The
    scratch directory takes them (pinned) from the stack's own ``.terraform/providers``: the CLI
    config here excludes every registry, so any download attempt fails the run."""
    env = "dev"
    backend.put_state(env, KIND, SEED_STATE.read_bytes())  # names registry.terraform.io/databricks/databricks
    stack_dir = synth_probe(tmp_path / "repo", server_environment(env, backend.url), KIND)
    tf_env = terraform_env(tmp_path)

    with pytest.raises(CommandError, match="databricks/databricks"):
        runbook.lock_holder(stack_dir, env=tf_env)

    # What `terraform init` in the stack directory leaves there (a placeholder plugin here).
    stubs = tmp_path / "stack-providers"
    stubs.mkdir()
    terraform_env(stubs, stub_providers=("databricks/databricks",))
    shutil.copytree(stubs / "provider-mirror", stack_dir / ".terraform" / "providers")
    assert runbook.lock_holder(stack_dir, env=tf_env) is None
    assert runbook.force_unlock(stack_dir, "no-such-lock", env=tf_env).holder is None
