"""Who may do what on an environment's Databricks objects: the identity model, as data.

Three service principals per environment (``platform_config.resolved.DatabricksNames``): the plan
principal reads, the deploy principal applies, the run-as principal runs the jobs. This module
turns them into the entries ``databricks-<env>`` declares, so that the stack, its tests and the
docs (docs/stacks/databricks.md, "Identities") read one list.

Every direct entry an object has is declared, including the applying principal's own: provider
1.99.0's permissions Read drops only the *caller's* entry, and only when the prior state lacks it
(``permissions/permission_definitions.go`` ``prepareResponse``), so an undeclared entry of the
deploy principal would be read back by the plan principal and show as a change in every plan.
Job ACLs always name their owner: applied without an ``IS_OWNER`` entry, the provider appends one
for the applier (``addOwnerPermissionIfNeeded``), changing the job's owner and, with ``run_as``
unset, who it runs as.

Pure Python: no provider import.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from platform_config.resolved import DatabricksNames

# Permission levels per object type, lowest first (provider 1.99.0 permissions mapping): a principal
# with two levels is read back with the highest only, a permanent diff, so only the highest is kept.
JOB_LEVELS = ("CAN_VIEW", "CAN_MANAGE_RUN", "CAN_MANAGE", "IS_OWNER")
EXPERIMENT_LEVELS = ("CAN_READ", "CAN_EDIT", "CAN_MANAGE")
DIRECTORY_LEVELS = ("CAN_READ", "CAN_RUN", "CAN_EDIT", "CAN_MANAGE")

# Unity Catalog privileges granted in code, per principal, on the environment's schema (one
# `databricks_grant` each: it manages that principal's privileges only). USE_CATALOG on the catalog
# and the deploy principal's own rights are granted once by an admin (runbook): a grant the deploy
# principal applies to itself would revoke what it holds beyond the list.
RUN_AS_SCHEMA_PRIVILEGES = ("CREATE_TABLE", "MODIFY", "SELECT", "USE_SCHEMA")
PLAN_SCHEMA_PRIVILEGES = ("USE_SCHEMA",)


@dataclass(frozen=True)
class Entry:
    """One access-control entry: ``principal`` is an application id, an e-mail or a group name."""

    principal: str
    level: str

    @property
    def kind(self) -> str:
        """The attribute that names the principal: ``service_principal_name``, ``user_name`` or
        ``group_name`` (a service principal by application id, as the provider wants it)."""
        return principal_kind(self.principal)


def principal_kind(principal: str) -> str:
    try:
        if str(uuid.UUID(principal)) == principal.lower():
            return "service_principal_name"
    except ValueError:
        pass
    return "user_name" if "@" in principal else "group_name"


def highest(entries: Iterable[Entry], levels: tuple[str, ...]) -> tuple[Entry, ...]:
    """One entry per principal, with its highest level; sorted (kind, principal) for stable JSON."""
    best: dict[tuple[str, str], Entry] = {}
    for entry in entries:
        if entry.level not in levels:
            raise ValueError(f"{entry.level} is not one of {levels}")
        key = (entry.kind, entry.principal.lower())
        if key not in best or levels.index(entry.level) > levels.index(best[key].level):
            best[key] = entry
    return tuple(best[k] for k in sorted(best))


def job_entries(names: DatabricksNames, view_groups: Iterable[str]) -> tuple[Entry, ...]:
    """The owner, the deploy principal (manages), the plan principal and the groups (view)."""
    return highest(
        (
            Entry(names.job_owner, "IS_OWNER"),
            Entry(names.deploy_principal, "CAN_MANAGE"),
            Entry(names.plan_principal, "CAN_VIEW"),
            *(Entry(g, "CAN_VIEW") for g in view_groups),
        ),
        JOB_LEVELS,
    )


def experiment_entries(names: DatabricksNames, read_groups: Iterable[str]) -> tuple[Entry, ...]:
    """The deploy principal manages, the run-as principal logs runs, plan principal and groups read."""
    return highest(
        (
            Entry(names.deploy_principal, "CAN_MANAGE"),
            Entry(names.run_as, "CAN_EDIT"),
            Entry(names.plan_principal, "CAN_READ"),
            *(Entry(g, "CAN_READ") for g in read_groups),
        ),
        EXPERIMENT_LEVELS,
    )


def notebooks_entries(names: DatabricksNames) -> tuple[Entry, ...]:
    """The notebooks' folder: the deploy principal manages, the run-as principal runs, plan reads."""
    return highest(
        (
            Entry(names.deploy_principal, "CAN_MANAGE"),
            Entry(names.run_as, "CAN_RUN"),
            Entry(names.plan_principal, "CAN_READ"),
        ),
        DIRECTORY_LEVELS,
    )


def schema_grants(names: DatabricksNames) -> dict[str, tuple[str, ...]]:
    """``{role: privileges}`` on ``<catalog>.<schema>`` for the run-as and plan principals."""
    return {"run_as": RUN_AS_SCHEMA_PRIVILEGES, "plan": PLAN_SCHEMA_PRIVILEGES}


def grant_principal(names: DatabricksNames, role: str) -> str:
    return {"run_as": names.run_as, "plan": names.plan_principal}[role]
