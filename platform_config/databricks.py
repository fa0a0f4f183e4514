"""The ``databricks = { ... }`` block of an environment's tfvars (Databricks MLOps stack).

Every value a Databricks Asset Bundle made from the databricks/mlops-stacks template would hold in
``databricks.yml`` and its resource files, checked before synthesis. Keys left unset take the
template's values; names that derive from others (catalog, schema, model, experiment, files root)
are derived in ``platform_config.resolved``; rules across keys are in ``platform_config.rules``.
"""

from __future__ import annotations

import re
import uuid
import zoneinfo
from functools import cache
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from platform_config.types import Bool, Frozen, Int, Kind, Str

Cloud = Literal["azure", "aws", "gcp"]

# The template's job cluster node types, one per cloud (mlops-stacks `new_cluster`).
DEFAULT_NODE_TYPES: dict[str, str] = {"azure": "Standard_D3_v2", "aws": "i3.xlarge", "gcp": "n2-highmem-4"}
# Pinned, not "latest": a runtime change must be a reviewed diff, never a silent drift. An LTS
# release (three years of support); the template's 15.3 is a non-LTS release out of support.
DEFAULT_SPARK_VERSION = "15.4.x-cpu-ml-scala2.12"

HOST_SUFFIXES: dict[str, tuple[str, ...]] = {
    "azure": (".azuredatabricks.net",),
    "aws": (".cloud.databricks.com",),
    "gcp": (".gcp.databricks.com",),
}
STORAGE_SCHEMES: dict[str, tuple[str, ...]] = {
    "azure": ("abfss://",),
    "aws": ("s3://",),
    "gcp": ("gs://",),
}
NODE_TYPE_PATTERNS: dict[str, re.Pattern[str]] = {
    "azure": re.compile(r"^Standard_[A-Za-z0-9_]+$"),
    "aws": re.compile(r"^[a-z][a-z0-9-]*\.[0-9a-z]+$"),
    "gcp": re.compile(r"^[a-z][a-z0-9]*-[a-z0-9-]+$"),
}

_IDENT = r"[A-Za-z_][A-Za-z0-9_-]*"
# Base parameters every task gets, so a notebook never guesses where it runs (a test run must not
# write to prod tables). Task parameters may not redefine them (rules.databricks_training_tasks).
RUN_CONTEXT_PARAMETERS = ("env", "catalog", "schema", "model_name", "experiment_name")
# The batch job's input table in the template without feature store (mlops-stacks
# batch-inference-workflow-resource.yml.tmpl): what a bundle made from it holds.
TEMPLATE_INPUT_TABLE = "taxi_scoring_sample"
# The table parameters of the batch task, set from `batch_inference.input_table`/`output_table`.
BATCH_TABLE_PARAMETERS = ("input_table_name", "output_table_name")
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
    if not re.fullmatch(rf"{_IDENT}(\.{_IDENT}){{0,2}}", value):
        raise ValueError(
            f"{value!r} must be a table name: <catalog>.<schema>.<table>, or a shorter name the "
            "notebook's default catalog and schema complete (the template's `taxi_scoring_sample`)"
        )
    return value


def _audience(value: str) -> str:
    if not re.fullmatch(r"[^\s\"']{1,255}", value):
        raise ValueError(f"{value!r} must be 1-255 characters without spaces or quotes (a token audience)")
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
    # MMDD-HHMMSS-<suffix>; the suffix length varies (the API's own example is 1234-567890-reef123).
    if not re.fullmatch(r"\d{4}-\d{6}-[a-z0-9]+", value):
        raise ValueError(f"{value!r} is not a cluster id (MMDD-HHMMSS-suffix, e.g. 0401-123456-abcd1234)")
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


Host = Annotated[Str, AfterValidator(_host), Kind("workspace URL")]
Name = Annotated[Str, AfterValidator(_name), Kind("lowercase name")]
Identifier = Annotated[Str, AfterValidator(_identifier), Kind("Unity Catalog identifier")]
Table = Annotated[Str, AfterValidator(_table), Kind("table name")]
Audience = Annotated[Str, AfterValidator(_audience), Kind("token audience")]
PrincipalName = Annotated[Str, AfterValidator(_principal_name), Kind("user e-mail or application id")]
Email = Annotated[Str, AfterValidator(_email), Kind("e-mail address")]
ApplicationId = Annotated[Str, AfterValidator(_application_id), Kind("application id (UUID)")]
AbsolutePath = Annotated[Str, AfterValidator(_absolute_path), Kind("absolute workspace path")]
NotebookPath = Annotated[Str, AfterValidator(_notebook_path), Kind("notebook path")]
TaskKey = Annotated[Str, AfterValidator(_task_key), Kind("task key")]
ClusterId = Annotated[Str, AfterValidator(_cluster_id), Kind("cluster id")]
SparkVersion = Annotated[Str, AfterValidator(_spark_version), Kind("ML runtime version")]
TimeZone = Annotated[Str, AfterValidator(_timezone), Kind("time zone id")]
QuartzCron = Annotated[Str, AfterValidator(_cron), Kind("Quartz cron expression")]
GroupName = Annotated[Str, Field(min_length=1, max_length=255), Kind("principal or group name")]


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
    """A job's trigger. Unpaused unless paused here or by `databricks.pause_schedules`, as a bundle
    outside development mode deploys it."""

    cron: QuartzCron = Field(
        description="Quartz cron: seconds first, exactly one of day-of-month and day-of-week is `?`."
    )
    timezone: TimeZone = Field(default="UTC", description="IANA time zone id of the schedule.")
    paused: Bool | None = Field(
        default=None, description="Pause this schedule; unset: `databricks.pause_schedules`."
    )


class NotebookTask(Frozen):
    """One task of the free task layout; tasks run in list order, each after its predecessor succeeded.
    Every task also gets the run context (`env`, `catalog`, `schema`, `model_name`,
    `experiment_name`) as base parameters."""

    key: TaskKey = Field(description="Task key, unique within the job (letters, digits, `_.-`, up to 100).")
    notebook: NotebookPath = Field(
        description="Notebook path relative to `files_root` (or absolute), without a file extension."
    )
    parameters: dict[Str, Str] = Field(
        default_factory=dict,
        description="More base parameters of the notebook; the run context's names are refused.",
    )


class Validation(Frozen):
    """Base parameters of the template's ModelValidation notebook."""

    run_mode: Literal["disabled", "dry_run", "enabled"] = Field(
        default="dry_run", description="Whether validation runs, and whether a failure stops deployment."
    )
    enable_baseline_comparison: Bool = Field(
        default=False, description="Compare the candidate with the current champion model."
    )
    input: Str = Field(
        default="SELECT * FROM delta.`dbfs:/databricks-datasets/nyctaxi-with-zipcodes/subsampled`",
        description="Query returning the validation data.",
    )
    model_type: Literal["regressor", "classifier"] = Field(
        default="regressor", description="Kind of model, for the MLflow evaluation metrics."
    )
    targets: Str = Field(default="fare_amount", description="Label column of the validation data.")


class Training(Frozen):
    """The model training job: the template's three tasks or a free list of notebooks."""

    layout: Literal["template", "notebooks"] = Field(
        default="template",
        description="`template`: Train -> ModelValidation -> ModelDeployment with the template's "
        "parameters; `notebooks`: the `tasks` list.",
    )
    tasks: tuple[NotebookTask, ...] = Field(
        default=(),
        description='The job\'s tasks, run in order; only with `layout = "notebooks"`, which needs at least one.',
    )
    training_data_path: Str = Field(
        default="/databricks-datasets/nyctaxi-with-zipcodes/subsampled",
        description='Train\'s data; only with `layout = "template"`.',
    )
    validation: Validation = Field(
        default=Validation(), description='ModelValidation\'s parameters; only with `layout = "template"`.'
    )
    existing_cluster_id: ClusterId | None = Field(
        default=None, description="Run every task on this cluster instead of the job cluster."
    )
    schedule: Schedule = Field(default=Schedule(cron="0 0 9 * * ?"), description="When the job runs.")


class BatchInference(Frozen):
    """The batch inference job: one notebook reading ``input_table``, writing ``output_table``."""

    notebook: NotebookPath = Field(
        default="deployment/batch_inference/notebooks/BatchInference",
        description="Notebook path relative to `files_root` (or absolute).",
    )
    input_table: Table = Field(
        default=TEMPLATE_INPUT_TABLE,
        description="Table scored by the job (`input_table_name`): `<catalog>.<schema>.<table>`, or a shorter "
        "name the notebook's default catalog and schema complete. The default is the template's (without "
        "feature store), what a bundle made from it deployed.",
    )
    output_table: Table | None = Field(
        default=None, description="Table the predictions go to; unset: `<catalog>.<schema>.predictions`."
    )
    parameters: dict[Str, Str] = Field(
        default_factory=dict,
        description="More base parameters of the notebook; the run context's names and the two table "
        "parameters are refused. Written (even empty), it is the task's whole list of extra parameters: "
        "`ops adopt` then accepts dropping a parameter the adopted job had.",
    )
    existing_cluster_id: ClusterId | None = Field(
        default=None, description="Run the job on this cluster instead of the job cluster."
    )
    schedule: Schedule = Field(default=Schedule(cron="0 0 11 * * ?"), description="When the job runs.")


class JobCluster(Frozen):
    """The job cluster of jobs that set no ``existing_cluster_id``."""

    spark_version: SparkVersion = Field(
        default=DEFAULT_SPARK_VERSION,
        description="Pinned Databricks ML runtime (the notebooks need MLflow and the ML libraries).",
    )
    node_type_id: Str | None = Field(
        default=None,
        description="Node type; must fit `cloud`. Unset: the template's (`Standard_D3_v2`, `i3.xlarge`, "
        "`n2-highmem-4`).",
    )
    num_workers: Int = Field(default=3, ge=0, le=100, description="Workers; 0 makes a single-node cluster.")
    data_security_mode: Literal["SINGLE_USER", "USER_ISOLATION"] = Field(
        default="SINGLE_USER", description="Unity Catalog access mode of the cluster."
    )


class Model(Frozen):
    """The Unity Catalog registered model."""

    comment: Str | None = Field(default=None, description="Comment shown on the registered model.")
    owner: GroupName | None = Field(
        default=None,
        description="Owner: a user e-mail, a service principal's application id or a group name. Unset: "
        "`run_as_service_principal` (Unity Catalog lets only the owner add model versions and set aliases, "
        "which training and deployment do).",
    )
    storage_location: Str | None = Field(
        default=None,
        description="Must use the cloud's scheme (`abfss://`, `s3://`, `gs://`). Leave it unset for an "
        "adopted model: Unity Catalog chose it, and a different value replaces the model.",
    )


class Notifications(Frozen):
    """Who is told about job runs."""

    on_failure: tuple[Email, ...] = Field(default=(), description="E-mail addresses told about failed runs.")


class DatabricksSettings(Frozen):
    """Workspace, target and jobs of the Databricks MLOps stack."""

    host: Host = Field(
        description="Workspace URL, `https://<host>` with no path; must belong to `cloud` "
        "(`*.azuredatabricks.net`, `*.cloud.databricks.com`, `*.gcp.databricks.com`)."
    )
    project: Name = Field(
        description="Bundle (project) name; schema, model, experiment and job names derive from it."
    )
    deploy_principal: ApplicationId = Field(
        description="Application id of the service principal that applies `databricks-<env>` (CI: "
        "`DATABRICKS_DEPLOY_CLIENT_ID` of the GitHub Environment `<env>`). Declared `CAN_MANAGE` on the "
        "jobs (their owner unless `job_owner`), `CAN_MANAGE` on the experiment and the notebooks' folder."
    )
    plan_principal: ApplicationId = Field(
        description="Application id of the service principal that plans (CI: `DATABRICKS_PLAN_CLIENT_ID` "
        "of `<env>-plan`, also the drift check); declared `CAN_VIEW`/`CAN_READ` on every object and "
        "`USE_SCHEMA` on the schema. Not the deploy or run-as principal."
    )
    run_as_service_principal: ApplicationId = Field(
        description="Application id of the service principal both jobs run as (`run_as`): owner of the "
        "model unless `model.owner`, `CAN_EDIT` on the experiment, `CAN_RUN` on the notebooks' folder, "
        "`USE_SCHEMA`, `SELECT`, `MODIFY`, `CREATE_TABLE` on the schema."
    )
    job_owner: PrincipalName | None = Field(
        default=None,
        description="`IS_OWNER` of both jobs; unset: `deploy_principal`. Set it to the current owner of "
        "adopted jobs until a workspace admin transfers them (only an admin can change a job's owner).",
    )
    oidc_audience: Audience = Field(
        description="Audience of the GitHub OIDC tokens exchanged for Databricks tokens: the "
        "`oidc_policy.audiences` entry of the federation policies of `deploy_principal` and `plan_principal`. Written into the "
        "provider block (`audience`) and requested by `ops run-job`/`ops deploy`; e.g. the Databricks "
        "account id."
    )
    deployer: PrincipalName | None = Field(
        default=None,
        description="User e-mail or application id whose `databricks bundle deploy` uploads the project's "
        "notebooks (and kept the bundle's state before adoption); names the default `files_root` and "
        "`experiment_path`. Unset: `deploy_principal`.",
    )

    cloud: Cloud = Field(
        default="azure",
        description="Cloud of the workspace: picks the default node type and the storage scheme.",
    )
    target: Name | None = Field(
        default=None,
        description="Bundle target. Unset: dev `test`, tst `staging`, prd `prod`, other environments their "
        "name. `prod` only in a production environment.",
    )
    catalog: Identifier | None = Field(default=None, description="Unity Catalog catalog; unset: the target.")
    schema_name: Identifier | None = Field(
        default=None, alias="schema", description="Unity Catalog schema; unset: the project."
    )
    model_name: Str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,255}$",
        description="Registered model name; unset: `<project>-model`.",
    )
    experiment_path: AbsolutePath | None = Field(
        default=None,
        description="MLflow experiment; unset: `/Users/<deployer>/<target>-<project>-experiment`.",
    )
    files_root: AbsolutePath | None = Field(
        default=None,
        description="Root of relative notebook paths; unset: "
        "`/Workspace/Users/<deployer>/.bundle/<project>/<target>/files`.",
    )
    job_name_prefix: Str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_\[\] .-]{0,40}$",
        description="Prefix of job names; unset: `<target>-` in every target (production too: `prod-`), "
        "as the template names them.",
    )
    pause_schedules: Bool = Field(
        default=False,
        description="Pause both jobs' schedules (a schedule's own `paused` wins). Bundles pause them only in "
        "development mode, so test, staging and prod run unpaused by default.",
    )

    model: Model = Field(default=Model(), description="The registered model.")
    model_execute_principals: tuple[GroupName, ...] = Field(
        default=("account users",), min_length=1, description="Principals granted `EXECUTE` on the model."
    )
    experiment_read_groups: tuple[GroupName, ...] = Field(
        default=("users",), min_length=1, description="Groups granted `CAN_READ` on the experiment."
    )
    job_view_groups: tuple[GroupName, ...] = Field(
        default=("users",),
        min_length=1,
        description="Groups granted `CAN_VIEW` on the jobs, next to the owner and the principals "
        "(`databricks_permissions.job_<job>`, authoritative: every direct entry is declared).",
    )

    training: Training = Field(default=Training(), description="The model training job.")
    batch_inference: BatchInference = Field(default=BatchInference(), description="The batch inference job.")
    job_cluster: JobCluster = Field(
        default=JobCluster(),
        description="Cluster of jobs without `existing_cluster_id`; refused when both jobs set one.",
    )
    notifications: Notifications = Field(default=Notifications(), description="Job run notifications.")
    tags: dict[Str, Str] = Field(
        default_factory=dict,
        description="Added to the platform tags on jobs and job clusters; keys 1-127 of letters, digits and "
        "`_.:/=+-@`, values up to 255 characters.",
    )
    max_retries: Int = Field(default=0, ge=-1, le=100, description="Retries per task; -1 retries forever.")
    timeout_seconds: Int = Field(
        default=0, ge=0, le=7 * 24 * 3600, description="Timeout per job run; 0 means none."
    )
    max_concurrent_runs: Int = Field(default=1, ge=1, le=1000, description="Concurrent runs per job.")
