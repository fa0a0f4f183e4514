"""The state server dies in the middle of an apply.

The moto server journals every request it receives; it is SIGKILLed while an apply holds the
lock, so the apply's final state write meets a dead endpoint. The server is then restarted on
the same port and its journal replayed: that stands in for S3's durability (what was stored
before the crash is there again), so the test can check what a crash leaves behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops import state as runbook
from ops.runner import state_info
from tests.state.support import (
    Applier,
    MotoServer,
    private_server,
    server_environment,
    synth_probe,
    terraform_env,
    written_value,
)

pytestmark = pytest.mark.state

ENV = "tst"
KIND = "databricks"


@pytest.fixture
def journaled_server(tmp_path: Path) -> Iterator[MotoServer]:
    with private_server(tmp_path / "moto", ENV, journal=True) as server:
        yield server


def test_server_killed_mid_apply_leaves_previous_state_intact(
    journaled_server: MotoServer, tmp_path: Path
) -> None:
    server = journaled_server
    stack_dir = synth_probe(tmp_path / "repo", server_environment(ENV, server.url), KIND)
    tf_env = terraform_env(tmp_path)
    applier = Applier(stack_dir, tf_env)
    applier.init()
    for value in ("v1", "v2"):
        assert applier.apply(value).returncode == 0
    good, _ = applier.pull()
    good_object = server.state_object(ENV, KIND)
    assert good_object is not None

    # The applier that meets the crash gives up after one attempt per request instead of five
    # with back-off (~60 s here); same bucket, key, locks and failure path.
    impatient = applier.clone(tmp_path / "impatient")
    impatient.tf.init("-reconfigure", "-backend-config=max_retries=1")
    crashing = impatient.start_apply("v3", hold=60)
    impatient.wait_until_holding(crashing)
    assert server.is_locked(ENV, KIND)
    server.kill()
    impatient.release()
    _out, err = crashing.communicate(timeout=300)

    # Terraform says so, and keeps the state it could not write.
    assert crashing.returncode != 0
    assert "Failed to save state" in err or "Failed to persist state" in err, err
    errored = impatient.dir / "errored.tfstate"
    assert errored.is_file()
    lost_in_flight = state_info(errored.read_text(), "errored.tfstate")
    assert lost_in_flight.lineage == good.lineage

    server.restart()
    server.replay()

    # The previous version is there, readable, valid, unchanged; no partial object was stored.
    versions = server.state_versions(ENV, KIND)
    assert versions, "the state object is gone"
    bodies = [server.version_body(ENV, KIND, v["VersionId"]) for v in versions]
    assert bodies[0] == good_object
    infos = [
        state_info(b.decode(), f"version {v['VersionId']}") for b, v in zip(bodies, versions, strict=True)
    ]
    assert {i.lineage for i in infos} == {good.lineage}
    assert [i.serial for i in infos] == sorted((i.serial for i in infos), reverse=True)
    current, state = applier.pull()
    assert current == good
    assert written_value(state) == "v2"

    # The crash also left its lock: the runbook releases it, and the in-flight state can be
    # pushed (same lineage, higher serial), so nothing applied is lost.
    holder = runbook.lock_holder(stack_dir, env=tf_env)
    assert holder is not None
    runbook.force_unlock(stack_dir, holder.id, env=tf_env)
    applier.tf.run("state", "push", str(errored))
    recovered, state = applier.pull()
    assert recovered.lineage == good.lineage
    assert recovered.serial > good.serial
    assert written_value(state) == "v3"
    assert json.loads(server.state_object(ENV, KIND) or b"{}")["lineage"] == good.lineage
