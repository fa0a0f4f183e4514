"""Databricks notebook jobs: tasks linked by ``depends_on``, on a job cluster or an existing cluster.

Tasks are written sorted by ``task_key`` (the run order lives only in ``depends_on``): provider
1.99.0 sorts them on read and compares by position, so any other order is a permanent diff, and
fields can move between tasks (the Databricks CLI sorts them for the same reason, PR #1776).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cdktf_cdktf_provider_databricks.job import (
    Job,
    JobEmailNotifications,
    JobJobCluster,
    JobJobClusterNewCluster,
    JobQueue,
    JobRunAs,
    JobSchedule,
    JobTask,
    JobTaskDependsOn,
    JobTaskNotebookTask,
)
from cdktf_cdktf_provider_databricks.permissions import Permissions
from constructs import Construct

from constructs_lib.databricks_access import AccessEntry, access_control


@dataclass(frozen=True)
class NotebookTaskSpec:
    """One notebook task; it runs once every task in ``depends_on`` succeeded."""

    key: str
    notebook_path: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()


def chained(tasks: tuple[NotebookTaskSpec, ...]) -> tuple[NotebookTaskSpec, ...]:
    """``tasks`` in run order, each made to depend on the one before it."""
    return tuple(
        NotebookTaskSpec(t.key, t.notebook_path, t.parameters, (previous.key,) if previous else ())
        for previous, t in zip((None, *tasks), tasks, strict=False)
    )


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


@dataclass(frozen=True)
class NotebookJobProps:
    """Give ``cluster`` (a job cluster shared by all tasks, created per run) or ``existing_cluster_id``.
    ``access`` is the job's whole direct ACL (``databricks_permissions.job_<address>``), with exactly
    one ``IS_OWNER``: without one the provider makes the applier the owner."""

    address: str  # databricks_job.<address>
    name: str
    tasks: tuple[NotebookTaskSpec, ...]
    schedule: ScheduleSpec
    cluster: JobClusterSpec | None = None
    existing_cluster_id: str | None = None
    on_failure_emails: tuple[str, ...] = ()
    run_as_service_principal: str | None = None
    tags: Mapping[str, str] | None = None
    max_retries: int = 0
    timeout_seconds: int = 0
    max_concurrent_runs: int = 1
    access: tuple[AccessEntry, ...] = ()

    def __post_init__(self) -> None:
        if (self.cluster is None) == (self.existing_cluster_id is None):
            raise ValueError(f"job {self.address}: give exactly one of cluster and existing_cluster_id")
        if not self.tasks:
            raise ValueError(f"job {self.address}: needs at least one task")
        keys = [t.key for t in self.tasks]
        if len(set(keys)) != len(keys):
            raise ValueError(f"job {self.address}: duplicate task keys in {keys}")
        for t in self.tasks:
            unknown = sorted(set(t.depends_on) - set(keys) | ({t.key} & set(t.depends_on)))
            if unknown:
                raise ValueError(f"job {self.address}: task {t.key} depends on unknown or itself: {unknown}")
        owners = [e for e in self.access if e.level == "IS_OWNER"]
        if self.access and len(owners) != 1:
            raise ValueError(
                f"job {self.address}: the ACL needs exactly one IS_OWNER entry, not {len(owners)}"
            )


class NotebookJob(Construct):
    """``databricks_job.<address>`` with queueing on (a bundle's default since CLI 0.218; unset,
    the provider sends ``enabled=false``); with ``access``, ``databricks_permissions.job_<address>``
    (the address a bundle gives a job's permissions)."""

    def __init__(self, scope: Construct, id_: str, props: NotebookJobProps) -> None:
        super().__init__(scope, id_)
        p = props
        address, cluster, existing_cluster_id = p.address, p.cluster, p.existing_cluster_id
        tasks = sorted(p.tasks, key=lambda t: t.key)

        self.cluster_key = f"{address}_cluster" if cluster is not None else None
        self.task_keys = tuple(t.key for t in tasks)
        self._job = Job(
            self,
            "job",
            name=p.name,
            job_cluster=[_job_cluster(self.cluster_key, cluster)] if cluster and self.cluster_key else None,
            task=[_task(spec, self.cluster_key, existing_cluster_id, p.max_retries) for spec in tasks],
            queue=JobQueue(enabled=True),
            schedule=JobSchedule(
                quartz_cron_expression=p.schedule.quartz_cron,
                timezone_id=p.schedule.timezone,
                pause_status="PAUSED" if p.schedule.paused else "UNPAUSED",
            ),
            email_notifications=(
                JobEmailNotifications(on_failure=list(p.on_failure_emails)) if p.on_failure_emails else None
            ),
            run_as=JobRunAs(service_principal_name=p.run_as_service_principal)
            if p.run_as_service_principal
            else None,
            tags=dict(p.tags) if p.tags else None,
            timeout_seconds=p.timeout_seconds,
            max_concurrent_runs=p.max_concurrent_runs,
        )
        self._job.override_logical_id(address)

        self.permissions: Permissions | None = None
        if p.access:
            self.permissions = Permissions(
                self, "permissions", job_id=self._job.id, access_control=access_control(p.access)
            )
            self.permissions.override_logical_id(f"job_{address}")

    @property
    def job_id(self) -> str:
        return self._job.id

    @property
    def url(self) -> str:
        return self._job.url


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
    spec: NotebookTaskSpec, cluster_key: str | None, existing_cluster_id: str | None, max_retries: int
) -> JobTask:
    after = sorted(spec.depends_on)  # the provider sorts depends_on too
    return JobTask(
        task_key=spec.key,
        depends_on=[JobTaskDependsOn(task_key=key) for key in after] or None,
        run_if="ALL_SUCCESS" if after else None,
        job_cluster_key=cluster_key,
        existing_cluster_id=existing_cluster_id,
        notebook_task=JobTaskNotebookTask(
            notebook_path=spec.notebook_path,
            base_parameters=dict(spec.parameters) if spec.parameters else None,
        ),
        max_retries=max_retries,
    )
