"""``ops bench``'s generated environments: valid, distinct copies of dev, so the per-environment
cost it reports is the cost of real environments."""

from __future__ import annotations

from pathlib import Path

from ops import bench
from platform_config.loader import load
from tests.conftest import ROOT, shipped_env_names


def test_many_environments_are_valid_distinct_copies_of_dev(tmp_path: Path) -> None:
    added = bench.many_environments(ROOT, tmp_path, 7)
    envs = {env.name: env for env in load(tmp_path)}
    assert sorted(envs) == sorted([*shipped_env_names(), *added])
    assert len(envs) == 7
    dev = envs[bench.CLONED_ENV]
    copies = [envs[name] for name in added]
    assert len({env.settings.network.vpc_cidr for env in [dev, *copies]}) == len(added) + 1
    assert len({env.backend.bucket for env in envs.values()}) == len(envs)
    for env in copies:
        assert env.settings.mlflow.server == dev.settings.mlflow.server
        assert env.settings.is_production is False
