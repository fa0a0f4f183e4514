"""Access to Databricks objects: workspace ACL entries and per-principal Unity Catalog grants.

``access_control`` renders entries for ``databricks_permissions`` (authoritative on the object's
direct ACL: every direct entry must be declared, see ``platform_config.databricks_access``).
``NotebooksFolderAccess`` is the ACL of the folder the jobs' notebooks are in; ``SchemaGrant`` one
principal's privileges on a schema (``databricks_grant``: other principals' grants are left alone,
unlike the authoritative ``databricks_grants``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cdktf_cdktf_provider_databricks.grant import Grant
from cdktf_cdktf_provider_databricks.permissions import Permissions, PermissionsAccessControl
from constructs import Construct

PRINCIPAL_KINDS = ("service_principal_name", "user_name", "group_name")


@dataclass(frozen=True)
class AccessEntry:
    """``kind`` is one of ``PRINCIPAL_KINDS``: how the provider names the principal."""

    kind: str
    principal: str
    level: str

    def __post_init__(self) -> None:
        if self.kind not in PRINCIPAL_KINDS:
            raise ValueError(f"{self.kind!r} is not one of {PRINCIPAL_KINDS}")


def access_control(entries: Sequence[AccessEntry]) -> list[PermissionsAccessControl]:
    principals = [(e.kind, e.principal.lower()) for e in entries]
    if len(set(principals)) != len(principals):
        raise ValueError(f"one principal twice in {entries}: the provider reads back only the highest level")
    return [PermissionsAccessControl(**{e.kind: e.principal}, permission_level=e.level) for e in entries]


@dataclass(frozen=True)
class NotebooksFolderAccessProps:
    path: str  # workspace folder, without the /Workspace prefix
    entries: tuple[AccessEntry, ...]


class NotebooksFolderAccess(Construct):
    """``databricks_permissions.notebooks``: who may read, run and manage the jobs' notebooks."""

    def __init__(self, scope: Construct, id_: str, props: NotebooksFolderAccessProps) -> None:
        super().__init__(scope, id_)
        if props.path.startswith("/Workspace/") or not props.path.startswith("/"):
            raise ValueError(f"{props.path!r}: an absolute workspace path without /Workspace")
        permissions = Permissions(
            self, "permissions", directory_path=props.path, access_control=access_control(props.entries)
        )
        permissions.override_logical_id("notebooks")


@dataclass(frozen=True)
class SchemaGrantProps:
    schema: str  # <catalog>.<schema>
    principal: str
    privileges: tuple[str, ...]
    address: str  # databricks_grant.<address>


class SchemaGrant(Construct):
    """One principal's privileges on a schema, and nobody else's."""

    def __init__(self, scope: Construct, id_: str, props: SchemaGrantProps) -> None:
        super().__init__(scope, id_)
        if props.schema.count(".") != 1:
            raise ValueError(f"{props.schema!r} is not <catalog>.<schema>")
        grant = Grant(
            self, "grant", schema=props.schema, principal=props.principal, privileges=sorted(props.privileges)
        )
        grant.override_logical_id(props.address)
