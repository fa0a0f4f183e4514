"""A stack built with our backend code round-trips its state through the real S3 backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from platform_config import naming
from tests.state.support import (
    ENVS,
    Applier,
    MotoServer,
    md5_hex,
    server_environment,
    synth_probe,
    terraform_env,
    written_value,
)

pytestmark = pytest.mark.state


@pytest.mark.parametrize("env", ENVS)
def test_round_trip_state_lands_at_the_stack_key(backend: MotoServer, tmp_path: Path, env: str) -> None:
    kind = "mlflow"
    stack_dir = synth_probe(tmp_path, server_environment(env, backend.url), kind)
    synthesized = json.loads((stack_dir / "cdk.tf.json").read_text())["terraform"]["backend"]["s3"]
    assert synthesized["key"] == naming.state_key(kind)
    assert synthesized["bucket"] == naming.state_bucket(env)

    applier = Applier(stack_dir, terraform_env(tmp_path))
    applier.init()
    first = applier.apply("one")
    assert first.returncode == 0, first.stderr
    second = applier.apply("two")
    assert second.returncode == 0, second.stderr

    info, state = applier.pull()
    assert written_value(state) == "two"
    stored = backend.state_object(env, kind)
    assert stored is not None, "no state object at the stack's key"
    stored_doc = json.loads(stored)
    assert (stored_doc["lineage"], stored_doc["serial"]) == (info.lineage, info.serial)
    assert info.serial >= 2  # two applies that changed the state, one lineage
    head = backend.client("s3").head_object(Bucket=naming.state_bucket(env), Key=naming.state_key(kind))
    assert head.get("ServerSideEncryption") == "aws:kms"

    items = backend.lock_items(env)
    lock_id = f"{naming.state_bucket(env)}/{naming.state_key(kind)}"
    if server_environment(env, backend.url).backend.dynamodb_table is not None:
        assert items[f"{lock_id}-md5"]["Digest"]["S"] == md5_hex(stored)
    else:
        assert not items, f"{env}'s config has no lock table, yet an item appeared"
    assert lock_id not in items, "a lock is left behind after apply"
    assert not backend.lockfile_present(env, kind)
