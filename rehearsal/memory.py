"""MLflow's measured memory at rest against the estimate and budget that the load rule uses
(platform_config.sizing): the rehearsal is where the estimate's figures come from, so it also
catches them going stale (a new MLflow release, another process layout)."""

from __future__ import annotations

from collections.abc import Sequence

from platform_config import sizing
from rehearsal.procs import Process

# Which term of sizing.AtRest each process role (procs.ROLES) is counted in.
TERMS = {
    "mlflow server": "base",
    "server supervisor": "base",
    "resource tracker": "base",
    "server worker": "server_worker",
    "job runner": "job_runner",
    "job-queue consumer": "job_consumer",
}
# The measured total may exceed the estimate by this share before the estimate counts as stale.
TOLERANCE = 0.10


def headroom(
    found: Sequence[Process], instance_type: str, workers: int, job_execution: bool
) -> tuple[bool, str]:
    """Pass when the measured PSS fits the budget and is within ``TOLERANCE`` of the estimate;
    the evidence is the verdict line, then one line per role."""
    estimate = sizing.MLFLOW_AT_REST.estimate(workers, job_execution)
    budget = sizing.budget_mib(instance_type)
    pss = sum(p.pss_mib for p in found)
    rss = sum(p.rss_mib for p in found)
    problems = []
    if pss > budget:
        problems.append(f"over the budget of {budget} MiB")
    if pss > estimate * (1 + TOLERANCE):
        problems.append(
            f"more than {TOLERANCE:.0%} over the estimate: update MLFLOW_AT_REST in "
            "platform_config/sizing.py from the lines below"
        )
    verdict = (
        f"PSS {pss:.0f} MiB measured, {estimate} MiB estimated ({workers} workers, job execution "
        f"{'on' if job_execution else 'off'}), budget {budget} MiB = {sizing.MLFLOW_SHARE:.0%} of "
        f"{instance_type} ({sizing.INSTANCE_MEMORY_MIB[instance_type]} MiB); {len(found)} processes, "
        f"RSS {rss:.0f} MiB" + (f": {'; '.join(problems)}" if problems else "")
    )
    return not problems, "\n".join([verdict, *_roles(found)])


def _roles(found: Sequence[Process]) -> list[str]:
    """One line per role, in the estimate's order, then any process the estimate does not know."""
    roles = {p.role for p in found}
    lines = []
    for role in [*(r for r in TERMS if r in roles), *sorted(roles - TERMS.keys())]:
        mine = [p for p in found if p.role == role]
        term = TERMS.get(role)
        each = ", ".join(f"{p.pss_mib:.0f}" for p in mine)
        lines.append(
            f"  {role}: {len(mine)} x PSS {each} MiB (RSS {sum(p.rss_mib for p in mine) / len(mine):.0f} "
            f"MiB each)" + (f", estimate term {term}" if term else ", in no estimate term")
        )
    return lines
