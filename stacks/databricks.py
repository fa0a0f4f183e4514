"""``databricks-<env>``: the Databricks side of the MLOps platform.

The resources a Databricks Asset Bundle from the databricks/mlops-stacks template deploys (seed
000), at the addresses the bundle's Terraform state holds them, so that state can be adopted:
a Unity Catalog model with grants, an MLflow experiment with permissions, and the model training
and batch inference jobs; then what makes them run as the environment's identities
(``platform_config.databricks_access``): each job's whole ACL with its owner, the notebooks' folder
ACL and the run-as and plan principals' privileges on the schema. The provider gets the workspace
host and the token audience: credentials come from the environment of whoever runs Terraform
(docs/stacks/databricks.md, "Authentication").
"""

from __future__ import annotations

from cdktf_cdktf_provider_databricks.provider import DatabricksProvider
from constructs import Construct

from constructs_lib.databricks_access import (
    AccessEntry,
    NotebooksFolderAccess,
    NotebooksFolderAccessProps,
    SchemaGrant,
    SchemaGrantProps,
)
from constructs_lib.databricks_artifacts import (
    TrackedExperiment,
    TrackedExperimentProps,
    UnityCatalogModel,
    UnityCatalogModelProps,
)
from constructs_lib.databricks_jobs import (
    JobClusterSpec,
    NotebookJob,
    NotebookJobProps,
    NotebookTaskSpec,
    ScheduleSpec,
    chained,
)
from platform_config import databricks_access
from platform_config.databricks import RUN_CONTEXT_PARAMETERS, DatabricksSettings, Schedule
from platform_config.loader import Environment
from platform_config.resolved import DatabricksNames
from stacks.base import PlatformStack

TRAINING_JOB = "model_training_job"
BATCH_INFERENCE_JOB = "batch_inference_job"


def run_context(names: DatabricksNames) -> dict[str, str]:
    """What every task is told about where it runs (``RUN_CONTEXT_PARAMETERS``, in that order)."""
    values = (names.target, names.catalog, names.schema, names.model_full_name, names.experiment_path)
    return dict(zip(RUN_CONTEXT_PARAMETERS, values, strict=True))


def training_tasks(settings: DatabricksSettings, names: DatabricksNames) -> tuple[NotebookTaskSpec, ...]:
    """The training job's tasks, each depending on the one before it in run order."""
    training = settings.training
    context = run_context(names)
    if training.layout == "notebooks":
        return chained(
            tuple(
                NotebookTaskSpec(t.key, names.notebook(t.notebook), {**context, **t.parameters})
                for t in training.tasks
            )
        )
    validation = training.validation
    # Databricks task values, resolved at run time (not Terraform interpolation).
    model_version = "{{tasks.Train.values.model_version}}"
    return chained(
        (
            NotebookTaskSpec(
                "Train",
                names.notebook("training/notebooks/Train"),
                {**context, "training_data_path": training.training_data_path},
            ),
            NotebookTaskSpec(
                "ModelValidation",
                names.notebook("validation/notebooks/ModelValidation"),
                {
                    **context,
                    "run_mode": validation.run_mode,
                    "enable_baseline_comparison": str(validation.enable_baseline_comparison).lower(),
                    "validation_input": validation.input,
                    "model_type": validation.model_type,
                    "targets": validation.targets,
                    "custom_metrics_loader_function": "custom_metrics",
                    "validation_thresholds_loader_function": "validation_thresholds",
                    "evaluator_config_loader_function": "evaluator_config",
                    "model_version": model_version,
                },
            ),
            NotebookTaskSpec(
                "ModelDeployment",
                names.notebook("deployment/model_deployment/notebooks/ModelDeployment"),
                {**context, "model_version": model_version},
            ),
        )
    )


def batch_inference_task(settings: DatabricksSettings, names: DatabricksNames) -> NotebookTaskSpec:
    """The template's BatchInference parameters plus catalog and schema; no experiment (batch
    inference logs no MLflow runs; its notebook has no such widget)."""
    context = {k: v for k, v in run_context(names).items() if k != "experiment_name"}
    return NotebookTaskSpec(
        BATCH_INFERENCE_JOB,
        names.notebook(settings.batch_inference.notebook),
        {
            **context,
            **settings.batch_inference.parameters,
            "input_table_name": names.batch_input_table,
            "output_table_name": names.batch_output_table,
        },
    )


def entries(items: tuple[databricks_access.Entry, ...]) -> tuple[AccessEntry, ...]:
    return tuple(AccessEntry(e.kind, e.principal, e.level) for e in items)


class DatabricksStack(PlatformStack):
    kind = "databricks"

    def __init__(self, scope: Construct, env: Environment) -> None:
        super().__init__(scope, env)
        settings = self.settings.databricks
        names = env.names.databricks
        self.names = names
        # The audience of the GitHub OIDC token the provider exchanges (auth_type github-oidc): the
        # Go SDK's `audience` (DATABRICKS_TOKEN_AUDIENCE), else the workspace's token endpoint
        # (databricks-sdk-go v0.93.0 config/experimental/auth/oidc determineAudience).
        DatabricksProvider(self, "databricks", host=names.host, audience=names.oidc_audience)

        model_settings = settings.model
        model = UnityCatalogModel(
            self,
            "registered_model",
            UnityCatalogModelProps(
                catalog=names.catalog,
                schema=names.schema,
                name=names.model,
                execute_principals=settings.model_execute_principals,
                comment=model_settings.comment,
                owner=names.model_owner,
                storage_location=model_settings.storage_location,
            ),
        )
        experiment = TrackedExperiment(
            self,
            "experiment",
            TrackedExperimentProps(
                path=names.experiment_path,
                access=entries(databricks_access.experiment_entries(names, settings.experiment_read_groups)),
            ),
        )
        training = self._job(
            TRAINING_JOB,
            names.training_job_name,
            training_tasks(settings, names),
            settings.training.existing_cluster_id,
            schedule=settings.training.schedule,
            paused=names.training_schedule_paused,
        )
        batch = self._job(
            BATCH_INFERENCE_JOB,
            names.batch_inference_job_name,
            (batch_inference_task(settings, names),),
            settings.batch_inference.existing_cluster_id,
            schedule=settings.batch_inference.schedule,
            paused=names.batch_inference_schedule_paused,
        )

        NotebooksFolderAccess(
            self,
            "notebooks",
            NotebooksFolderAccessProps(
                path=names.files_root.removeprefix("/Workspace"),
                entries=entries(databricks_access.notebooks_entries(names)),
            ),
        )
        for role, privileges in databricks_access.schema_grants(names).items():
            SchemaGrant(
                self,
                f"schema_{role}",
                SchemaGrantProps(
                    schema=f"{names.catalog}.{names.schema}",
                    principal=databricks_access.grant_principal(names, role),
                    privileges=privileges,
                    address=f"schema_{role}",
                ),
            )

        self.output("databricks_target", names.target, "Bundle target (workspace stage) of this environment")
        self.output("registered_model_full_name", model.full_name, "Unity Catalog name of the model")
        self.output("mlflow_experiment_id", experiment.experiment_id, "Id of the MLflow experiment")
        self.output(
            "mlflow_experiment_name", names.experiment_path, "Workspace path of the MLflow experiment"
        )
        self.output("model_training_job_id", training.job_id, "Id of the model training job")
        self.output("model_training_job_url", training.url, "Workspace URL of the model training job")
        self.output("batch_inference_job_id", batch.job_id, "Id of the batch inference job")
        self.output("batch_inference_job_url", batch.url, "Workspace URL of the batch inference job")

    def _job(
        self,
        address: str,
        name: str,
        tasks: tuple[NotebookTaskSpec, ...],
        cluster_id: str | None,
        *,
        schedule: Schedule,
        paused: bool,
    ) -> NotebookJob:
        """A job on the environment's job cluster, or on ``cluster_id`` when given."""
        settings = self.settings.databricks
        tags = {**self.tags, **settings.tags}
        cluster = JobClusterSpec(
            spark_version=settings.job_cluster.spark_version,
            node_type_id=self.names.node_type_id,
            num_workers=settings.job_cluster.num_workers,
            data_security_mode=settings.job_cluster.data_security_mode,
            custom_tags=tags,
        )
        return NotebookJob(
            self,
            address,
            NotebookJobProps(
                address=address,
                name=name,
                tasks=tasks,
                schedule=ScheduleSpec(schedule.cron, schedule.timezone, paused),
                cluster=None if cluster_id else cluster,
                existing_cluster_id=cluster_id,
                on_failure_emails=settings.notifications.on_failure,
                run_as_service_principal=self.names.run_as,
                tags=tags,
                max_retries=settings.max_retries,
                timeout_seconds=settings.timeout_seconds,
                max_concurrent_runs=settings.max_concurrent_runs,
                access=entries(databricks_access.job_entries(self.names, settings.job_view_groups)),
            ),
        )
