"""The answer to a lock write is lost: Terraform meets its own lock, and the runbook frees it.

Terraform takes the state lock with a conditional write (DynamoDB ``PutItem`` with
``attribute_not_exists(LockID)``, or an S3 ``PUT`` of ``<key>.tflock`` with ``If-None-Match: *``).
When that write succeeds but its answer never arrives, the AWS SDK sends it again; the lock
store refuses the second one because the first took the lock, and Terraform reports the state
as locked by a lock whose ID is its own, then exits and leaves that lock behind. Every later
run is refused until the lock is released. Seen for real in this suite: under CPU contention
Terraform 1.11.4 closed its own connections between the headers and the body of moto's answers,
the SDK resent the DynamoDB writes, and state tests failed so whenever anything ran beside them,
until moto_serve.py wrote each answer in one piece.

The server here (``moto_serve.py --lose-lock-answer``) drops exactly one answer, to the first
lock write of one kind, so the failure is reproduced every time and for every lock mechanism an
environment uses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops import cli
from platform_config import naming
from platform_config.loader import Environment
from tests.conftest import load_repo_environments
from tests.state.support import (
    ENVS,
    LOCK_ERROR,
    Applier,
    MotoServer,
    private_server,
    server_environment,
    synth_probe,
    terraform_env,
    written_value,
)

pytestmark = pytest.mark.state

KIND = "mlflow"


def lock_mechanisms(env: Environment) -> list[str]:
    return (["s3"] if env.backend.use_lockfile else []) + (["dynamodb"] if env.backend.dynamodb_table else [])


CASES = [(e.name, m) for e in load_repo_environments() for m in lock_mechanisms(e)]


@pytest.fixture
def lossy_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MotoServer]:
    env, mechanism = request.param
    with private_server(tmp_path / "moto", env, lose_lock_answer=mechanism) as server:
        yield server


def test_every_lock_mechanism_of_every_environment_is_covered() -> None:
    assert {env for env, _ in CASES} == set(ENVS)


@pytest.mark.parametrize(
    ("env", "lossy_server"),
    [(env, (env, m)) for env, m in CASES],
    ids=[f"{env}-{m}" for env, m in CASES],
    indirect=["lossy_server"],
)
def test_a_lock_write_whose_answer_is_lost_is_released_by_the_runbook(
    lossy_server: MotoServer,
    tmp_path: Path,
    env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = lossy_server
    mechanism = server.lose_lock_answer
    root = tmp_path / "repo"
    stack_dir = synth_probe(root, server_environment(env, server.url), KIND)
    backend = json.loads((stack_dir / "cdk.tf.json").read_text())["terraform"]["backend"]["s3"]
    assert mechanism is not None
    assert backend.get({"s3": "use_lockfile", "dynamodb": "dynamodb_table"}[mechanism])
    tf_env = terraform_env(tmp_path)
    applier = Applier(stack_dir, tf_env)
    applier.init()

    # The first apply's lock write is carried out, its answer dropped, the resend refused.
    first = applier.apply("never-written")
    assert first.returncode != 0
    assert LOCK_ERROR in first.stderr, first.stderr
    assert "dropped" in (server.workdir / "moto.log").read_text()
    own = re.search(r"^\s+ID:\s+(\S+)$", first.stderr, flags=re.M)
    assert own is not None, first.stderr
    lock_id = own.group(1)
    assert server.state_object(env, KIND) is None, "nothing was applied"

    # Its own lock outlived it: what the lock store holds, and every further run refused.
    if mechanism == "dynamodb":
        item = server.lock_items(env).get(f"{naming.state_bucket(env)}/{naming.state_key(KIND)}")
        assert item is not None and lock_id in item["Info"]["S"]
    else:
        assert server.lockfile_present(env, KIND)
    refused = applier.apply("blocked")
    assert refused.returncode != 0
    assert LOCK_ERROR in refused.stderr
    assert lock_id in refused.stderr

    # The runbook as a user runs it: it names the holder, then frees exactly that lock.
    for key, value in tf_env.items():
        monkeypatch.setenv(key, value)
    unlock = ["--root", str(root), "state", "unlock", "--env", env, "--stack", KIND]
    assert cli.main(unlock) == 0
    assert f"LOCK_ID={lock_id}" in capsys.readouterr().out
    assert cli.main([*unlock, "--lock-id", lock_id]) == 0
    released = capsys.readouterr().out
    assert f"released the lock ID {lock_id}" in released
    # With both stores configured, Terraform's force-unlock fails on the store that held no lock
    # (it still releases the other); the runbook checks the lock is gone and says so.
    both = [e for e, _ in CASES].count(env) == 2
    assert ("force-unlock failed, yet the lock is gone" in released) == both, released
    assert not server.is_locked(env, KIND)

    # Nothing was applied behind the lock, so nothing is lost: the next apply creates the state.
    assert applier.apply("after-unlock").returncode == 0
    created, state = applier.pull()
    assert written_value(state) == "after-unlock"
    assert created.serial == 1
