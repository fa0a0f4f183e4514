"""State locking with DynamoDB, the S3-native lockfile, or both, as each environment's
backend config says (shipped: dev lockfile, tst both, prd DynamoDB).

moto 5.2.5 implements S3 conditional writes (``If-None-Match: *`` answered with 412), which
Terraform's ``use_lockfile`` relies on, so the S3-native cases run for real instead of xfailing:
``test_server_enforces_conditional_writes`` fails if a server version stops enforcing them.

The parallel appliers contend for one round per lock mode in the default run; the repeated
rounds (``SOAK_ROUNDS``) carry the ``soak`` marker, which ``make soak`` runs and the default
``pytest`` leaves out (pyproject.toml ``addopts``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from platform_config import naming
from tests.state.support import (
    ENVS,
    LOCK_ERROR,
    Applier,
    MotoServer,
    ended_except_one,
    server_environment,
    synth_probe,
    terraform_env,
    wait_for,
    written_value,
)

pytestmark = pytest.mark.state

KIND = "databricks"
APPLIERS = 4
SOAK_ROUNDS = 3
# A holder keeps the lock until the test has seen what it needs (Applier.release), at most this.
HOLD_SECONDS = 60


def _ready(backend: MotoServer, tmp_path: Path, env: str) -> Applier:
    stack_dir = synth_probe(tmp_path / "repo", server_environment(env, backend.url), KIND)
    applier = Applier(stack_dir, terraform_env(tmp_path))
    applier.init()
    first = applier.apply("initial")
    assert first.returncode == 0, first.stderr
    return applier


def _lock_artefacts(backend: MotoServer, env: str) -> tuple[bool, bool]:
    """(S3 lockfile present, DynamoDB lock item present) for the stack's state."""
    lock_id = f"{naming.state_bucket(env)}/{naming.state_key(KIND)}"
    return backend.lockfile_present(env, KIND), lock_id in backend.lock_items(env)


def test_server_enforces_conditional_writes(backend: MotoServer) -> None:
    s3 = backend.client("s3")
    bucket = naming.state_bucket("dev")
    s3.put_object(Bucket=bucket, Key="probe.tflock", Body=b"1", IfNoneMatch="*")
    with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=bucket, Key="probe.tflock", Body=b"2", IfNoneMatch="*")


@pytest.mark.parametrize("env", ENVS)
def test_second_apply_is_refused_while_the_first_holds_the_lock(
    backend: MotoServer, tmp_path: Path, env: str
) -> None:
    holder = _ready(backend, tmp_path, env)
    other = holder.clone(tmp_path / "other")
    before, _ = holder.pull()

    running = holder.start_apply("held", hold=HOLD_SECONDS)
    holder.wait_until_holding(running)
    # Each config's lock mechanism, and only it, is in use.
    settings = server_environment(env, backend.url).backend
    assert _lock_artefacts(backend, env) == (bool(settings.use_lockfile), settings.dynamodb_table is not None)

    refused = other.apply("intruder")
    assert refused.returncode != 0
    assert LOCK_ERROR in refused.stderr, refused.stderr

    holder.release()
    _out, err = running.communicate(timeout=60)
    assert running.returncode == 0, err
    after, state = holder.pull()
    assert after.lineage == before.lineage
    assert after.serial == before.serial + 1
    assert written_value(state) == "held"
    assert _lock_artefacts(backend, env) == (False, False)


@pytest.mark.parametrize(
    "rounds", [1, pytest.param(SOAK_ROUNDS, marks=pytest.mark.soak)], ids=["one-round", "soak-rounds"]
)
@pytest.mark.parametrize("env", ENVS)
def test_parallel_appliers_exactly_one_wins_each_round(
    backend: MotoServer, tmp_path: Path, env: str, rounds: int
) -> None:
    first = _ready(backend, tmp_path, env)
    appliers = [first.clone(tmp_path / f"applier-{i}") for i in range(APPLIERS)]
    before, _ = first.pull()
    conflicts = 0
    for round_no in range(1, rounds + 1):
        procs = [
            a.start_apply(f"round-{round_no}-applier-{i}", hold=HOLD_SECONDS) for i, a in enumerate(appliers)
        ]
        # The one that takes the lock holds it until every other has ended, refused; if two took it,
        # neither ends before the bound and the winners check below fails.
        ended_except_one(procs, timeout=HOLD_SECONDS)
        for a in appliers:
            a.release()
        results = [(p, *p.communicate(timeout=90)) for p in procs]
        winners = [i for i, (p, _out, _err) in enumerate(results) if p.returncode == 0]
        assert len(winners) == 1, f"round {round_no}: winners {winners}"
        for i, (p, _out, err) in enumerate(results):
            if i != winners[0]:
                assert p.returncode == 1
                assert LOCK_ERROR in err, err
                # Failed cleanly: refused before planning, nothing half-written.
                assert "Failed to save state" not in err
                assert not (appliers[i].dir / "errored.tfstate").exists()
                conflicts += 1

        text = first.tf.run("state", "pull").stdout
        state = json.loads(text)  # valid JSON, or this raises
        assert state["lineage"] == before.lineage
        assert state["serial"] == before.serial + round_no, "a write was lost or doubled"
        assert written_value(state) == f"round-{round_no}-applier-{winners[0]}"
        assert _lock_artefacts(backend, env) == (False, False)
    assert conflicts == rounds * (APPLIERS - 1)
    print(f"\n[state figures] {env}: {rounds} rounds x {APPLIERS} appliers, {conflicts} conflicts, 0 lost")


def test_lock_timeout_waits_instead_of_failing(backend: MotoServer, tmp_path: Path) -> None:
    """The other side of locking: with -lock-timeout the second apply queues and both writes land."""
    env = "tst"  # the S3 lockfile (and DynamoDB): a refused lock shows in the server's log
    holder = _ready(backend, tmp_path, env)
    other = holder.clone(tmp_path / "other")
    before, _ = holder.pull()
    running = holder.start_apply("first", hold=HOLD_SECONDS)
    holder.wait_until_holding(running)
    refused = backend.refused_lockfile_writes()
    queued = other.start_apply("second", lock_timeout="60s")
    wait_for(
        lambda: backend.refused_lockfile_writes() > refused, what="the second apply to find the lock held"
    )
    holder.release()
    _out, err = queued.communicate(timeout=90)
    assert queued.returncode == 0, err
    running.communicate(timeout=60)
    assert running.returncode == 0
    after, state = holder.pull()
    assert after.serial == before.serial + 2
    assert written_value(state) == "second"
