"""The project's ML artifacts in Databricks: a Unity Catalog model and an MLflow experiment.

The template's ``ml-artifacts-resource.yml``, with the Terraform addresses a bundle deployment
gives them, so that a bundle's state can be adopted without replacing anything.
"""

from __future__ import annotations

from cdktf_cdktf_provider_databricks.grants import Grants, GrantsGrant
from cdktf_cdktf_provider_databricks.mlflow_experiment import MlflowExperiment
from cdktf_cdktf_provider_databricks.permissions import Permissions, PermissionsAccessControl
from cdktf_cdktf_provider_databricks.registered_model import RegisteredModel
from constructs import Construct


class UnityCatalogModel(Construct):
    """``databricks_registered_model.model`` and its authoritative grants.

    Grants are written the way bundles write them (``function`` = the model's id): the same
    attribute keeps the adopted ``databricks_grants.registered_model_model`` free of changes.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        catalog: str,
        schema: str,
        name: str,
        execute_principals: tuple[str, ...],
        comment: str | None = None,
        owner: str | None = None,
        storage_location: str | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.model = RegisteredModel(
            self,
            "model",
            catalog_name=catalog,
            schema_name=schema,
            name=name,
            comment=comment,
            owner=owner,
            storage_location=storage_location,
        )
        self.model.override_logical_id("model")
        self.grants = Grants(
            self,
            "grants",
            function=self.model.id,
            grant=[GrantsGrant(principal=p, privileges=["EXECUTE"]) for p in execute_principals],
        )
        self.grants.override_logical_id("registered_model_model")

    @property
    def full_name(self) -> str:
        """``<catalog>.<schema>.<name>`` once applied (the resource id)."""
        return self.model.id


class TrackedExperiment(Construct):
    """``databricks_mlflow_experiment.experiment`` readable by the given groups."""

    def __init__(self, scope: Construct, id_: str, *, path: str, read_groups: tuple[str, ...]) -> None:
        super().__init__(scope, id_)
        self.experiment = MlflowExperiment(self, "experiment", name=path)
        self.experiment.override_logical_id("experiment")
        self.permissions = Permissions(
            self,
            "permissions",
            experiment_id=self.experiment.id,
            access_control=[
                PermissionsAccessControl(group_name=g, permission_level="CAN_READ") for g in read_groups
            ],
        )
        self.permissions.override_logical_id("mlflow_experiment_experiment")

    @property
    def experiment_id(self) -> str:
        return self.experiment.id
