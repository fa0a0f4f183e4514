"""How much memory MLflow takes on an instance, and how much the instance has: the one table and
the one estimate that the load rule (``rules.mlflow_memory_headroom``) and the boot rehearsal
(``rehearsal/memory.py``, which measures what is estimated here) both use."""

from __future__ import annotations

from dataclasses import dataclass

# Memory of each instance type the MLflow servers may use, MiB (EC2 instance types documentation).
# x86_64 families only: the instances boot the x86_64 Amazon Linux 2023 AMI (`mlflow.server.ami_id`),
# which an arm64 (Graviton) type cannot start. A type missing here is refused at load time: add it
# with its memory.
_BURSTABLE_GIB = {"micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16, "2xlarge": 32}
_VCPUS = {"large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16}
# GiB per vCPU of each fixed-performance family: compute optimised, general purpose, memory optimised.
_GIB_PER_VCPU = {
    **dict.fromkeys(("c5", "c6i", "c6a", "c7i", "c7a"), 2),
    **dict.fromkeys(("m5", "m6i", "m6a", "m7i", "m7a"), 4),
    **dict.fromkeys(("r5", "r6i", "r6a", "r7i", "r7a"), 8),
}
INSTANCE_MEMORY_MIB: dict[str, int] = {
    **{f"{family}.{size}": gib * 1024 for family in ("t3", "t3a") for size, gib in _BURSTABLE_GIB.items()},
    **{
        f"{family}.{size}": per_vcpu * vcpus * 1024
        for family, per_vcpu in _GIB_PER_VCPU.items()
        for size, vcpus in _VCPUS.items()
    },
}

# MLflow at rest may use at most this share of the instance: the rest is for the system, nginx, the
# CloudWatch agent, artifact uploads streaming through the server, job subprocesses and spikes.
MLFLOW_SHARE = 0.5


@dataclass(frozen=True)
class AtRest:
    """Proportional set size (PSS: shared pages split between the processes sharing them) of
    MLflow's processes at rest, MiB, from the boot rehearsal (``make rehearse``, step "memory at
    rest leaves headroom", which prints each process and fails when the estimate is exceeded)."""

    # `mlflow server` itself, uvicorn's supervisor and its multiprocessing resource tracker.
    base: int
    # Each of the `--workers` uvicorn worker processes (each loads the whole MLflow server).
    server_worker: int
    # With job execution on: the job runner and its Huey consumers, one per job function MLflow
    # registers (six in 3.17.2: mlflow/server/jobs/__init__.py, _SUPPORTED_JOB_FUNCTION_LIST) plus
    # one for periodic tasks (mlflow/server/jobs/_job_runner.py). MLflow fixes that number: no
    # setting changes it (each consumer's `-w` is threads; a job runs in a subprocess of its own).
    job_runner: int
    job_consumer: int
    job_consumers: int

    @property
    def job_queue(self) -> int:
        return self.job_runner + self.job_consumers * self.job_consumer

    def estimate(self, workers: int, job_execution: bool) -> int:
        """MiB of MLflow at rest with ``workers`` server workers."""
        return self.base + workers * self.server_worker + (self.job_queue if job_execution else 0)


# MLflow 3.17.2 on Python 3.11, one instance per host, measured after the rehearsal's user journey.
# dev (2 workers, job execution off): mlflow server 189, supervisor 17, resource tracker 6, workers
# 229 and 227. prd (4 workers, on): 175, 17, 6, workers 204-210, job runner 166, consumers 169-172.
# Each term is the largest figure seen (a process's PSS is larger when fewer processes share the
# pages), rounded up to 10 MiB.
MLFLOW_AT_REST = AtRest(base=220, server_worker=230, job_runner=170, job_consumer=180, job_consumers=7)


def budget_mib(instance_type: str) -> int:
    """What MLflow at rest may use on ``instance_type``."""
    return int(INSTANCE_MEMORY_MIB[instance_type] * MLFLOW_SHARE)


def max_workers(instance_type: str, job_execution: bool) -> int:
    """The most server workers whose estimate fits the budget (0 when not even one does)."""
    room = budget_mib(instance_type) - MLFLOW_AT_REST.estimate(0, job_execution)
    return max(room // MLFLOW_AT_REST.server_worker, 0)
