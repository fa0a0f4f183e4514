"""The ``databricks = { ... }`` block of an environment's tfvars (Databricks MLOps stack).

Every value a Databricks Asset Bundle made from the databricks/mlops-stacks template would hold in
``databricks.yml`` and its resource files, checked before synthesis. Keys left unset take the
template's values; names that derive from others (catalog, schema, model, experiment, files root)
are derived in ``platform_config.naming``.
"""

from __future__ import annotations

import re
import uuid
import zoneinfo
from functools import cache
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field

from platform_config.types import Bool, Frozen, Int, Str

if TYPE_CHECKING:
    from platform_config.environment import EnvironmentSettings

Cloud = Literal["azure", "aws", "gcp"]

# The template's job cluster node types, one per cloud (mlops-stacks `new_cluster`).
DEFAULT_NODE_TYPES: dict[str, str] = {"azure": "Standard_D3_v2", "aws": "i3.xlarge", "gcp": "n2-highmem-4"}
# Pinned, not "latest": a runtime change must be a reviewed diff, never a silent drift.
DEFAULT_SPARK_VERSION = "15.3.x-cpu-ml-scala2.12"

_HOST_SUFFIXES: dict[str, tuple[str, ...]] = {
    "azure": (".azuredatabricks.net",),
    "aws": (".cloud.databricks.com",),
    "gcp": (".gcp.databricks.com",),
}
_STORAGE_SCHEMES: dict[str, tuple[str, ...]] = {
    "azure": ("abfss://",),
    "aws": ("s3://",),
    "gcp": ("gs://",),
}
_NODE_TYPE_PATTERNS: dict[str, re.Pattern[str]] = {
    "azure": re.compile(r"^Standard_[A-Za-z0-9_]+$"),
    "aws": re.compile(r"^[a-z][a-z0-9-]*\.[0-9a-z]+$"),
    "gcp": re.compile(r"^[a-z][a-z0-9]*-[a-z0-9-]+$"),
}

_IDENT = r"[A-Za-z_][A-Za-z0-9_-]*"
_EMAIL = re.compile(r"^[^@\s/]+@[^@\s/]+\.[^@\s/]+$")


# --- field validators ----------------------------------------------------------------------------


def _host(value: str) -> str:
    if not re.fullmatch(r"https://[a-z0-9]([a-z0-9.-]*[a-z0-9])?/?", value):
        raise ValueError(
            f"{value!r} is not a workspace URL; expected https://<workspace host> with no path, "
            "e.g. https://adb-1234567890123456.7.azuredatabricks.net"
        )
    return value.rstrip("/")


def _name(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", value):
        raise ValueError(
            f"{value!r} must be 1-63 lowercase letters, digits or underscores, starting with a letter "
            "(it becomes part of catalog, schema and model names)"
        )
    return value


def _identifier(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,254}", value):
        raise ValueError(f"{value!r} is not a Unity Catalog identifier (letters, digits, underscores)")
    return value


def _table(value: str) -> str:
    if not re.fullmatch(rf"{_IDENT}\.{_IDENT}\.{_IDENT}", value):
        raise ValueError(f"{value!r} must be a three-part table name <catalog>.<schema>.<table>")
    return value


def _principal_name(value: str) -> str:
    if _is_uuid(value) or _EMAIL.match(value):
        return value
    raise ValueError(f"{value!r} must be a user e-mail or a service principal's application id (a UUID)")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _application_id(value: str) -> str:
    if not _is_uuid(value):
        raise ValueError(f"{value!r} is not a service principal application id (a UUID)")
    return value


def _absolute_path(value: str) -> str:
    if not value.startswith("/") or value.endswith("/") or "//" in value or "/../" in f"{value}/":
        raise ValueError(f"{value!r} must be an absolute workspace path, e.g. /Users/<user>/<name>")
    return value


def _notebook_path(value: str) -> str:
    if not value or value.endswith("/") or "//" in value or ".." in value.split("/"):
        raise ValueError(f"{value!r} is not a notebook path (relative to files_root, or absolute)")
    if value.endswith((".py", ".ipynb", ".sql", ".scala", ".r", ".R")):
        raise ValueError(
            f"{value!r}: workspace notebooks have no file extension (the bundle strips it on upload)"
        )
    return value


def _task_key(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", value):
        raise ValueError(f"{value!r} must be 1-100 letters, digits, '_', '-' or '.' (a Databricks task key)")
    return value


def _cluster_id(value: str) -> str:
    if not re.fullmatch(r"\d{4}-\d{6}-[a-z0-9]{8}", value):
        raise ValueError(f"{value!r} is not a cluster id (e.g. 0401-123456-abcd1234)")
    return value


def _spark_version(value: str) -> str:
    if not re.fullmatch(r"\d+\.\d+\.x-(cpu-|gpu-)?ml-scala2\.1[23]", value):
        raise ValueError(
            f"{value!r} must be a pinned Databricks ML runtime, e.g. {DEFAULT_SPARK_VERSION} "
            "(the jobs' notebooks need MLflow and the ML libraries)"
        )
    return value


def _timezone(value: str) -> str:
    if value not in _timezones():
        raise ValueError(f"{value!r} is not a time zone id (e.g. UTC, Europe/Berlin, America/New_York)")
    return value


def _cron(value: str) -> str:
    problem = quartz_cron_problem(value)
    if problem:
        raise ValueError(f"{value!r} is not a Quartz cron expression: {problem}")
    return value


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


Host = Annotated[Str, AfterValidator(_host)]
Name = Annotated[Str, AfterValidator(_name)]
Identifier = Annotated[Str, AfterValidator(_identifier)]
Table = Annotated[Str, AfterValidator(_table)]
PrincipalName = Annotated[Str, AfterValidator(_principal_name)]
Email = Annotated[Str, AfterValidator(_email)]
ApplicationId = Annotated[Str, AfterValidator(_application_id)]
AbsolutePath = Annotated[Str, AfterValidator(_absolute_path)]
NotebookPath = Annotated[Str, AfterValidator(_notebook_path)]
TaskKey = Annotated[Str, AfterValidator(_task_key)]
ClusterId = Annotated[Str, AfterValidator(_cluster_id)]
SparkVersion = Annotated[Str, AfterValidator(_spark_version)]
TimeZone = Annotated[Str, AfterValidator(_timezone)]
QuartzCron = Annotated[Str, AfterValidator(_cron)]
GroupName = Annotated[Str, Field(min_length=1, max_length=255)]


# --- Quartz cron ---------------------------------------------------------------------------------

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# (name, lowest, highest, names for values) per field, in Quartz order.
_CRON_FIELDS: tuple[tuple[str, int, int, list[str]], ...] = (
    ("seconds", 0, 59, []),
    ("minutes", 0, 59, []),
    ("hours", 0, 23, []),
    ("day-of-month", 1, 31, []),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 1, 7, _DAYS),
    ("year", 1970, 2099, []),
)


def quartz_cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a Quartz cron expression (as Databricks job schedules take), or None.

    Quartz differs from Unix cron: seconds come first, and exactly one of day-of-month and
    day-of-week must be ``?``.
    """
    fields = expression.split()
    if len(fields) not in (6, 7):
        hint = (
            " (looks like Unix cron: Quartz adds seconds first, e.g. '0 0 9 * * ?')"
            if len(fields) == 5
            else ""
        )
        return f"has {len(fields)} fields, needs 6 or 7 (seconds minutes hours day-of-month month day-of-week [year]){hint}"
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=False):
        problem = _cron_field_problem(text, name, low, high, names)
        if problem:
            return f"{name} field {text!r}: {problem}"
    dom, dow = fields[3], fields[5]
    if (dom == "?") == (dow == "?"):
        return "exactly one of day-of-month and day-of-week must be '?'"
    return None


def _cron_field_problem(text: str, name: str, low: int, high: int, names: list[str]) -> str | None:
    if text == "?":
        if name in ("day-of-month", "day-of-week"):
            return None
        return "'?' is only allowed for day-of-month or day-of-week"
    for item in text.split(","):
        problem = _cron_item_problem(item, name, low, high, names)
        if problem:
            return problem
    return None


def _cron_item_problem(item: str, name: str, low: int, high: int, names: list[str]) -> str | None:
    if not item:
        return "empty list item"
    if name == "day-of-month" and re.fullmatch(r"L(-([1-9]|[12]\d|30))?|LW|([1-9]|[12]\d|3[01])W", item):
        return None
    if name == "day-of-week" and re.fullmatch(r"([1-7]|[A-Z]{3})(L|#[1-5])|L", item.upper()):
        day = item.upper()[:3]
        return f"unknown day {day!r}" if day.isalpha() and len(day) == 3 and day not in names else None
    base, slash, step = item.partition("/")
    if slash and (not step.isdigit() or not 1 <= int(step) <= high):
        return f"bad increment {step!r}"
    if base == "*":
        return None
    return _cron_range_problem(base, low, high, names)


def _cron_range_problem(base: str, low: int, high: int, names: list[str]) -> str | None:
    bounds = base.split("-")
    if len(bounds) > 2:
        return f"bad range {base!r}"
    values = []
    for bound in bounds:
        value = _cron_value(bound, names)
        if value is None:
            return f"{bound!r} is not a number or name"
        if not low <= value <= high:
            return f"{value} is outside {low}-{high}"
        values.append(value)
    if len(values) == 2 and values[0] > values[1]:
        return f"range {base!r} runs backwards"
    return None


def _cron_value(text: str, names: list[str]) -> int | None:
    if text.isdigit():
        return int(text)
    upper = text.upper()
    if names and upper in names:
        # Quartz numbers months 1-12 and days 1 (SUN) - 7 (SAT).
        return names.index(upper) + 1
    return None


# --- the block -----------------------------------------------------------------------------------


class Schedule(Frozen):
    """A job's trigger. Outside production it is synthesized paused, as bundle development mode does."""

    cron: QuartzCron
    timezone: TimeZone = "UTC"


class NotebookTask(Frozen):
    """One task of the free task layout; tasks run in list order, each after its predecessor succeeded."""

    key: TaskKey
    notebook: NotebookPath
    parameters: dict[Str, Str] = Field(default_factory=dict)


class Validation(Frozen):
    """Base parameters of the template's ModelValidation notebook."""

    run_mode: Literal["disabled", "dry_run", "enabled"] = "dry_run"
    enable_baseline_comparison: Bool = False
    input: Str = "SELECT * FROM delta.`dbfs:/databricks-datasets/nyctaxi-with-zipcodes/subsampled`"
    model_type: Literal["regressor", "classifier"] = "regressor"
    targets: Str = "fare_amount"


class Training(Frozen):
    """The model training job: the template's three tasks or a free list of notebooks."""

    layout: Literal["template", "notebooks"] = "template"
    tasks: tuple[NotebookTask, ...] = ()
    training_data_path: Str = "/databricks-datasets/nyctaxi-with-zipcodes/subsampled"
    validation: Validation = Validation()
    existing_cluster_id: ClusterId | None = None
    schedule: Schedule = Schedule(cron="0 0 9 * * ?")


class BatchInference(Frozen):
    """The batch inference job: one notebook reading ``input_table``, writing ``output_table``."""

    notebook: NotebookPath = "deployment/batch_inference/notebooks/BatchInference"
    input_table: Table | None = None
    output_table: Table | None = None
    existing_cluster_id: ClusterId | None = None
    schedule: Schedule = Schedule(cron="0 0 11 * * ?")


class JobCluster(Frozen):
    """The job cluster of jobs that set no ``existing_cluster_id``."""

    spark_version: SparkVersion = DEFAULT_SPARK_VERSION
    node_type_id: Str | None = None
    num_workers: Int = Field(default=3, ge=0, le=100)
    data_security_mode: Literal["SINGLE_USER", "USER_ISOLATION"] = "SINGLE_USER"


class Model(Frozen):
    """The Unity Catalog registered model."""

    comment: Str | None = None
    # A user e-mail, a service principal's application id or a group name.
    owner: GroupName | None = None
    storage_location: Str | None = None


class Notifications(Frozen):
    on_failure: tuple[Email, ...] = ()


class DatabricksSettings(Frozen):
    """Workspace, target and jobs of the Databricks MLOps stack."""

    # Optional here only so an environment file can be checked key by key; check() requires them.
    host: Host | None = None
    project: Name | None = None
    deployer: PrincipalName | None = None

    cloud: Cloud = "azure"
    target: Name | None = None
    catalog: Identifier | None = None
    schema_name: Identifier | None = Field(default=None, alias="schema")
    model_name: Str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,255}$")
    experiment_path: AbsolutePath | None = None
    files_root: AbsolutePath | None = None
    job_name_prefix: Str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\[\] .-]{0,40}$")

    model: Model = Model()
    model_execute_principals: tuple[GroupName, ...] = Field(default=("account users",), min_length=1)
    experiment_read_groups: tuple[GroupName, ...] = Field(default=("users",), min_length=1)
    job_permissions: Bool = False
    job_view_groups: tuple[GroupName, ...] = Field(default=("users",), min_length=1)

    training: Training = Training()
    batch_inference: BatchInference = BatchInference()
    job_cluster: JobCluster = JobCluster()
    notifications: Notifications = Notifications()
    run_as_service_principal: ApplicationId | None = None
    tags: dict[Str, Str] = Field(default_factory=dict)
    max_retries: Int = Field(default=0, ge=-1, le=100)
    timeout_seconds: Int = Field(default=0, ge=0, le=7 * 24 * 3600)
    max_concurrent_runs: Int = Field(default=1, ge=1, le=1000)

    @property
    def node_type_id(self) -> str:
        return self.job_cluster.node_type_id or DEFAULT_NODE_TYPES[self.cloud]

    def check(self, env: EnvironmentSettings) -> list[tuple[str, str]]:
        """Cross-field problems as ``(key under databricks, message)``; the loader adds the file."""
        problems: list[tuple[str, str]] = []
        for key in ("host", "project"):
            if getattr(self, key) is None:
                problems.append((key, "missing required key"))
        if self.deployer is None and (self.experiment_path is None or self.files_root is None):
            problems.append(
                (
                    "deployer",
                    "missing: the user or service principal that deployed the bundle names the default "
                    "experiment_path and files_root; set deployer or both paths",
                )
            )
        host_cloud = _host_cloud(self.host)
        if host_cloud is not None and host_cloud != self.cloud:
            problems.append(
                ("host", f"{self.host!r} is a workspace on {host_cloud}, but cloud = {self.cloud!r}")
            )
        location = self.model.storage_location
        if location is not None and not location.startswith(_STORAGE_SCHEMES[self.cloud]):
            problems.append(
                (
                    "model.storage_location",
                    f"must start with {' or '.join(_STORAGE_SCHEMES[self.cloud])} on {self.cloud}",
                )
            )
        node_type = self.job_cluster.node_type_id
        if node_type is not None and not _NODE_TYPE_PATTERNS[self.cloud].match(node_type):
            problems.append(
                (
                    "job_cluster.node_type_id",
                    f"{node_type!r} is not a node type on {self.cloud} (e.g. {DEFAULT_NODE_TYPES[self.cloud]})",
                )
            )
        problems.extend(self._task_problems())
        problems.extend(self._unused_keys())
        for key, tag_value in self.tags.items():
            if not re.fullmatch(r"[A-Za-z0-9_.:/=+@ -]{1,127}", key) or len(tag_value) > 255:
                problems.append(
                    (f"tags.{key}", "tag keys are 1-127 letters, digits or _.:/=+-@; values up to 255")
                )
        if not env.is_production and self.target == "prod":
            problems.append(
                ("target", '"prod" is the production target; this is not a production environment')
            )
        return problems

    def _task_problems(self) -> list[tuple[str, str]]:
        training = self.training
        problems: list[tuple[str, str]] = []
        if training.layout == "notebooks" and not training.tasks:
            problems.append(("training.tasks", 'layout = "notebooks" needs at least one task'))
        if training.layout == "template" and training.tasks:
            problems.append(
                (
                    "training.tasks",
                    'only used with layout = "notebooks" (the template layout has fixed tasks)',
                )
            )
        seen: dict[str, int] = {}
        for i, task in enumerate(training.tasks):
            if task.key in seen:
                problems.append(
                    (
                        f"training.tasks[{i}].key",
                        f"duplicate task key {task.key!r} (also training.tasks[{seen[task.key]}])",
                    )
                )
            else:
                seen[task.key] = i
        return problems

    def _unused_keys(self) -> list[tuple[str, str]]:
        """Keys that would be silently ignored are errors: a setting that does nothing misleads."""
        problems: list[tuple[str, str]] = []
        if "job_view_groups" in self.model_fields_set and not self.job_permissions:
            problems.append(("job_view_groups", "has no effect unless job_permissions = true"))
        if self.training.layout == "notebooks":
            for key in sorted(self.training.model_fields_set & {"training_data_path", "validation"}):
                problems.append((f"training.{key}", 'only used with layout = "template"'))
        both_existing = self.training.existing_cluster_id and self.batch_inference.existing_cluster_id
        if both_existing and "job_cluster" in self.model_fields_set:
            problems.append(("job_cluster", "has no effect: both jobs set existing_cluster_id"))
        return problems


def _host_cloud(host: str | None) -> str | None:
    """The cloud a workspace URL belongs to; None for hosts we cannot tell (e.g. custom domains)."""
    for cloud, suffixes in _HOST_SUFFIXES.items():
        if host is not None and host.endswith(suffixes):
            return cloud
    return None
