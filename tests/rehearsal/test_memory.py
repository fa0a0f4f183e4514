"""The rehearsal's memory step: process roles from command lines, and the measured memory judged
against the load rule's estimate and budget (platform_config.sizing)."""

from __future__ import annotations

import pytest

from platform_config import sizing
from rehearsal import memory
from rehearsal.procs import Process, role

pytestmark = pytest.mark.rehearsal

PY = "/r/venv/bin/python"


@pytest.mark.parametrize(("argv", "expected"), [
    ([PY, "/r/venv/bin/mlflow", "server", "--workers", "2"], "mlflow server"),
    ([PY, "-m", "uvicorn", "--workers", "2", "mlflow.server.fastapi_app:app"], "server supervisor"),
    ([PY, "-c", "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, pipe_handle=7)",
      "--multiprocessing-fork"], "server worker"),
    ([PY, "-c", "from multiprocessing.resource_tracker import main;main(4)"], "resource tracker"),
    ([PY, "-m", "mlflow.server.jobs._job_runner"], "job runner"),
    ([PY, "-m", "huey.bin.huey_consumer", "mlflow.server.jobs._huey_consumer.huey_instance", "-w", "10", "-q"],
     "job-queue consumer"),
    (["/usr/sbin/nginx", "-g", "daemon off;"], "nginx"),
])  # fmt: skip
def test_each_process_gets_its_role(argv: list[str], expected: str) -> None:
    assert role(argv) == expected


def tree(workers: int, worker_pss: float, jobs: bool) -> list[Process]:
    """An MLflow process tree as MLflow 3.17.2 starts it, with the given worker size."""
    found = [Process(1, "mlflow server", 240, 189), Process(2, "server supervisor", 26, 17)]
    found.append(Process(3, "resource tracker", 12, 6))
    found += [Process(10 + i, "server worker", 277, worker_pss) for i in range(workers)]
    if jobs:
        found.append(Process(20, "job runner", 230, 166))
        found += [Process(30 + i, "job-queue consumer", 233, 172) for i in range(7)]
    return found


def test_the_measured_tree_within_the_estimate_passes_and_shows_each_role() -> None:
    ok, evidence = memory.headroom(tree(4, 210, jobs=True), "m6i.large", 4, job_execution=True)
    verdict, *roles = evidence.splitlines()
    estimate = sizing.MLFLOW_AT_REST.estimate(4, True)
    assert ok, evidence
    assert verdict.startswith(
        f"PSS 2422 MiB measured, {estimate} MiB estimated (4 workers, job execution on)"
    )
    assert "budget 4096 MiB = 50% of m6i.large (8192 MiB); 15 processes" in verdict
    assert (
        "  server worker: 4 x PSS 210, 210, 210, 210 MiB (RSS 277 MiB each), estimate term server_worker"
        in roles
    )
    assert len(roles) == 6


def test_a_stale_estimate_fails_and_says_what_to_update() -> None:
    # Workers twice the size the estimate assumes: still within half of the instance.
    ok, evidence = memory.headroom(tree(4, 460, jobs=False), "m6i.large", 4, job_execution=False)
    assert not ok
    assert "over the estimate: update MLFLOW_AT_REST in platform_config/sizing.py" in evidence.splitlines()[0]
    assert "over the budget" not in evidence


def test_over_half_the_instance_fails() -> None:
    ok, evidence = memory.headroom(tree(8, 230, jobs=True), "t3.medium", 8, job_execution=True)
    assert not ok
    assert "over the budget of 2048 MiB" in evidence.splitlines()[0]


def test_a_process_the_estimate_does_not_know_is_counted_and_shown_last() -> None:
    found = [*tree(2, 229, jobs=False), Process(99, "python3.11", 90, 60)]
    ok, evidence = memory.headroom(found, "t3.medium", 2, job_execution=False)
    assert evidence.splitlines()[0].startswith("PSS 730 MiB measured")
    assert evidence.splitlines()[-1] == "  python3.11: 1 x PSS 60 MiB (RSS 90 MiB each), in no estimate term"
    assert ok  # 730 MiB is within 10 % of the 680 MiB estimate
