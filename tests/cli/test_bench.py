"""``ops bench``'s generated environments: valid, distinct copies of dev, so the per-environment
cost it reports is the cost of real environments."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

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


def _samples(seconds: float) -> list[bench.Sample]:
    return [bench.Sample(seconds, 100.0, 200.0, 300.0)]


def test_the_suite_row_compares_make_check_with_one_full_synth() -> None:
    samples = {
        bench.FLOOR: _samples(10.0),
        bench.FULL: _samples(2.0),
        bench.DATABRICKS: _samples(0.5),
        bench.MANY: _samples(6.0),
    }
    assert "make test" not in " ".join(row[0] for row in bench.targets(samples, 3))
    rows = {row[0]: row for row in bench.targets(samples, 3, suite=80.0)}
    assert rows["make test (without its set-up) / full synth"][1:] == (
        "40.0x (80.0 s / 2.00 s)",
        "<= 6x",
        "NO",
    )
    assert rows["databricks only / full synth"][1] == "0.25x (0.50 s / 2.00 s)"


def test_throughput_runs_the_rehearsals_step_for_a_shipped_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[list[str]] = []

    def execute(cmd: list[str], **kwargs: object) -> SimpleNamespace:
        seen.append(cmd)
        return SimpleNamespace(returncode=1)

    monkeypatch.setattr(bench, "execute", execute)
    # The rehearsal's verdict is bench's exit code.
    assert bench.throughput() == 1
    (cmd,) = seen
    assert cmd[0] == str(ROOT / "rehearsal" / "run.sh") and Path(cmd[0]).exists()
    assert cmd[1:] == ["--env", min(shipped_env_names()), "--throughput-only"]
