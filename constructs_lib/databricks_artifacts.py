"""The project's ML artifacts in Databricks: a Unity Catalog model and an MLflow experiment.

The template's ``ml-artifacts-resource.yml``, with the Terraform addresses a bundle deployment
gives them, so that a bundle's state can be adopted without replacing anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cdktf_cdktf_provider_databricks.grants import Grants, GrantsGrant
from cdktf_cdktf_provider_databricks.mlflow_experiment import MlflowExperiment
from cdktf_cdktf_provider_databricks.permissions import Permissions
from cdktf_cdktf_provider_databricks.registered_model import RegisteredModel
from constructs import Construct

from constructs_lib.databricks_access import AccessEntry, access_control


@dataclass(frozen=True)
class UnityCatalogModelProps:
    catalog: str
    schema: str
    name: str
    execute_principals: tuple[str, ...]
    comment: str | None = None
    owner: str | None = None
    storage_location: str | None = None


class UnityCatalogModel(Construct):
    """``databricks_registered_model.model`` and its authoritative grants.

    Grants are written the way bundles write them (``function`` = the model's id): the same
    attribute keeps the adopted ``databricks_grants.registered_model_model`` free of changes.
    """

    def __init__(self, scope: Construct, id_: str, props: UnityCatalogModelProps) -> None:
        super().__init__(scope, id_)
        self._model = RegisteredModel(
            self,
            "model",
            catalog_name=props.catalog,
            schema_name=props.schema,
            name=props.name,
            comment=props.comment,
            owner=props.owner,
            storage_location=props.storage_location,
        )
        self._model.override_logical_id("model")
        grants = Grants(
            self,
            "grants",
            function=self._model.id,
            grant=[GrantsGrant(principal=p, privileges=["EXECUTE"]) for p in props.execute_principals],
        )
        grants.override_logical_id("registered_model_model")

    @property
    def full_name(self) -> str:
        """``<catalog>.<schema>.<name>`` once applied (the resource id)."""
        return self._model.id


@dataclass(frozen=True)
class TrackedExperimentProps:
    path: str  # workspace path, the experiment's name
    access: tuple[AccessEntry, ...] = field(default_factory=tuple)  # its whole direct ACL


class TrackedExperiment(Construct):
    """``databricks_mlflow_experiment.experiment`` and its ACL
    (``databricks_permissions.mlflow_experiment_experiment``, a bundle's address)."""

    def __init__(self, scope: Construct, id_: str, props: TrackedExperimentProps) -> None:
        super().__init__(scope, id_)
        self._experiment = MlflowExperiment(self, "experiment", name=props.path)
        self._experiment.override_logical_id("experiment")
        permissions = Permissions(
            self,
            "permissions",
            experiment_id=self._experiment.id,
            access_control=access_control(props.access),
        )
        permissions.override_logical_id("mlflow_experiment_experiment")

    @property
    def experiment_id(self) -> str:
        return self._experiment.id
