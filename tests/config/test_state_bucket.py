"""``state_bucket.replication``: a replica in another, real region, on in production."""

from __future__ import annotations

from typing import Any

import pytest

from platform_config.loader import TFVARS_DIR
from tests.fixtures.envs import FIXTURES, ConfigFiles

DEV = f"{TFVARS_DIR}/dev.tfvars"
PRD = f"{TFVARS_DIR}/prd.tfvars"


# (id, file, replication block, key, message fragment)
CASES: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("enabled without region", DEV, {"enabled": True}, "state_bucket.replication.region", "missing"),
    ("region of the environment", DEV, {"enabled": True, "region": "us-east-1"},
     "state_bucket.replication.region", "is aws_region (us-east-1)"),
    ("not a region", DEV, {"enabled": True, "region": "us-middle-9"}, "state_bucket.replication.region",
     "not an AWS region"),
    ("wrong type", DEV, {"enabled": "yes"}, "state_bucket.replication.enabled", "valid boolean"),
    ("unknown key", DEV, {"enabled": True, "region": "us-west-2", "kms": "x"}, "state_bucket.replication.kms",
     "unknown key"),
    ("off in production", PRD, {"enabled": False}, "state_bucket.replication.enabled", "production"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("file", "block", "key", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_replication_gives_one_problem_naming_the_key(
    file: str, block: dict[str, Any], key: str, fragment: str
) -> None:
    [problem] = ConfigFiles(FIXTURES).set(file, "state_bucket.replication", block).problems()
    assert (problem.file, problem.key) == (file, key), problem
    assert fragment in problem.message, problem


def test_replication_in_another_region_loads() -> None:
    files = ConfigFiles(FIXTURES).set(
        DEV, "state_bucket.replication", {"enabled": True, "region": "eu-west-1"}
    )
    dev = next(e for e in files.load() if e.name == "dev")
    assert dev.settings.state_bucket.replication.region == "eu-west-1"
    assert dev.names.bootstrap.replica_bucket == "mlopspltf-dev-s3-tf-backend-replica"
