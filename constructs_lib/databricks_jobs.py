"""Databricks notebook jobs: tasks chained in order, on a job cluster or an existing cluster."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cdktf_cdktf_provider_databricks.job import (
    Job,
    JobEmailNotifications,
    JobJobCluster,
    JobJobClusterNewCluster,
    JobRunAs,
    JobSchedule,
    JobTask,
    JobTaskDependsOn,
    JobTaskNotebookTask,
)
from cdktf_cdktf_provider_databricks.permissions import Permissions, PermissionsAccessControl
from constructs import Construct


@dataclass(frozen=True)
class NotebookTaskSpec:
    key: str
    notebook_path: str
    parameters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobClusterSpec:
    spark_version: str
    node_type_id: str
    num_workers: int
    data_security_mode: str
    custom_tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduleSpec:
    quartz_cron: str
    timezone: str
    paused: bool


class NotebookJob(Construct):
    """``databricks_job.<address>``: each task runs only after its predecessor succeeded.

    Give ``cluster`` (a job cluster shared by all tasks, created per run) or ``existing_cluster_id``.
    With ``view_groups``, adds ``databricks_permissions.job_<address>`` (CAN_VIEW), as bundles do.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        address: str,
        name: str,
        tasks: tuple[NotebookTaskSpec, ...],
        schedule: ScheduleSpec,
        cluster: JobClusterSpec | None = None,
        existing_cluster_id: str | None = None,
        on_failure_emails: tuple[str, ...] = (),
        run_as_service_principal: str | None = None,
        tags: Mapping[str, str] | None = None,
        max_retries: int = 0,
        timeout_seconds: int = 0,
        max_concurrent_runs: int = 1,
        view_groups: tuple[str, ...] = (),
    ) -> None:
        super().__init__(scope, id_)
        if (cluster is None) == (existing_cluster_id is None):
            raise ValueError(f"job {address}: give exactly one of cluster and existing_cluster_id")
        if not tasks:
            raise ValueError(f"job {address}: needs at least one task")
        keys = [t.key for t in tasks]
        if len(set(keys)) != len(keys):
            raise ValueError(f"job {address}: duplicate task keys in {keys}")

        self.cluster_key = f"{address}_cluster" if cluster is not None else None
        self.task_keys = tuple(keys)
        self.job = Job(
            self,
            "job",
            name=name,
            job_cluster=[_job_cluster(self.cluster_key, cluster)] if cluster and self.cluster_key else None,
            task=[
                _task(spec, previous, self.cluster_key, existing_cluster_id, max_retries)
                for spec, previous in zip(tasks, (None, *keys), strict=False)
            ],
            schedule=JobSchedule(
                quartz_cron_expression=schedule.quartz_cron,
                timezone_id=schedule.timezone,
                pause_status="PAUSED" if schedule.paused else "UNPAUSED",
            ),
            email_notifications=(
                JobEmailNotifications(on_failure=list(on_failure_emails)) if on_failure_emails else None
            ),
            run_as=JobRunAs(service_principal_name=run_as_service_principal)
            if run_as_service_principal
            else None,
            tags=dict(tags) if tags else None,
            timeout_seconds=timeout_seconds,
            max_concurrent_runs=max_concurrent_runs,
        )
        self.job.override_logical_id(address)

        self.permissions: Permissions | None = None
        if view_groups:
            self.permissions = Permissions(
                self,
                "permissions",
                job_id=self.job.id,
                access_control=[
                    PermissionsAccessControl(group_name=g, permission_level="CAN_VIEW") for g in view_groups
                ],
            )
            self.permissions.override_logical_id(f"job_{address}")


def _job_cluster(key: str, spec: JobClusterSpec) -> JobJobCluster:
    spark_conf: dict[str, str] | None = None
    custom_tags = dict(spec.custom_tags)
    if spec.num_workers == 0:
        # Databricks' documented single-node form; without it a 0-worker cluster never runs Spark jobs.
        spark_conf = {"spark.databricks.cluster.profile": "singleNode", "spark.master": "local[*]"}
        custom_tags["ResourceClass"] = "SingleNode"
    return JobJobCluster(
        job_cluster_key=key,
        new_cluster=JobJobClusterNewCluster(
            spark_version=spec.spark_version,
            node_type_id=spec.node_type_id,
            num_workers=spec.num_workers,
            data_security_mode=spec.data_security_mode,
            spark_conf=spark_conf,
            custom_tags=custom_tags or None,
        ),
    )


def _task(
    spec: NotebookTaskSpec,
    previous: str | None,
    cluster_key: str | None,
    existing_cluster_id: str | None,
    max_retries: int,
) -> JobTask:
    return JobTask(
        task_key=spec.key,
        depends_on=[JobTaskDependsOn(task_key=previous)] if previous else None,
        run_if="ALL_SUCCESS" if previous else None,
        job_cluster_key=cluster_key,
        existing_cluster_id=existing_cluster_id,
        notebook_task=JobTaskNotebookTask(
            notebook_path=spec.notebook_path,
            base_parameters=dict(spec.parameters) if spec.parameters else None,
        ),
        max_retries=max_retries,
    )
