"""``ops adopt --env E --from FILE --bundle-dir DIR --branch B ...``: make a Databricks bundle's
Terraform state ``databricks-<env>``'s.

The bundle keeps its own state: while it still holds one of the adopted resources, its next
``bundle deploy`` destroys it once it is gone from ``databricks.yml``, or, while
``databricks.yml`` still declares it after an unbind, creates a second copy. So the command
pushes nothing unless every check passes, in this order:

1. ``--from`` (the bundle's state exported *before* unbinding) holds every adopted address the
   stack declares for this environment (the jobs, the experiment, the model, their grants and
   experiment permissions): one missing would be created by the first apply, a duplicate job
   with a running schedule, or a failed create of the model and experiment.
2. Its names are ours: bundle and target from the jobs' metadata path, model catalog/schema/name
   (a replacement), job names, task keys.
3. What the jobs do is what the environment file says: a change of a task's notebook, its base
   parameters (input and output tables among them), the cluster, ``run_as`` or the model's owner
   is accepted only when the tfvars key that makes it is written in the file (an intended change,
   listed and confirmed), never by a default.
4. ``terraform plan`` against a copy of it deletes, replaces and creates none of the adopted
   resources.
5. The bundle manages none of them now: its state (``--bundle-state FILE``, or through the
   ``databricks`` CLI: ``bundle summary`` in ``--bundle-dir`` and the state folder next to the jobs'
   ``metadata.json``, ``terraform.tfstate`` or ``resources.json``) holds none, and a read that
   fails is a refusal. Otherwise it prints the ``unbind`` commands (``--unbind`` runs them, once
   the CLI's version is known to support each kind) and the ``state rm`` of what unbind leaves.
6. The bundle's configuration declares none of them on any ``--branch`` (``git show`` in the
   checkout) nor in the checkout's ``bundle summary``.
7. It pushes the state under our key with its lineage kept (``ops.state``'s empty-key lineage
   repair), after you confirm the intended changes (``--yes`` to skip the question).

Every environment whose bundle target was ever deployed is adopted this way before its first
deploy (``--env dev`` adopts target ``test``, ``--env tst`` ``staging``, ``--env prd`` ``prod``);
``ops deploy`` refuses a first apply while the bundle still manages the target's resources or
objects of the same names exist (``first_apply_problems``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ops import bundle, state, synth
from ops.databricks_api import ApiError, Workspace
from ops.runner import CommandError, Console, StateInfo, Terraform, UsageError, state_info
from platform_config import naming
from platform_config.databricks import RUN_CONTEXT_PARAMETERS
from platform_config.loader import Environment, load
from platform_config.resolved import DatabricksNames

PROVIDER = 'provider["registry.terraform.io/databricks/databricks"]'
# The bundle's addresses for the objects it created and their grants and permissions: `--from`
# must hold each one the stack declares. (A bundle gives a job's permissions
# `databricks_permissions.job_<key>` too; the stack declares them with their owner, so where the
# bundle had none they are created: an ACL of an existing job, no duplicate.)
ADOPTED_SUBRESOURCES = (
    "databricks_grants.registered_model_model",
    "databricks_permissions.mlflow_experiment_experiment",
)
# What the stack adds next to the bundle's resources: access to existing objects, created by the
# first apply when the adopted state lacks them.
CREATED = re.compile(r"^(databricks_permissions\.(job_[a-z_]+|notebooks)|databricks_grant\.schema_[a-z_]+)$")
# Attributes whose change replaces the resource (provider 1.99.0 ForceNew).
FORCE_NEW: dict[str, tuple[str, ...]] = {
    "databricks_registered_model": ("name", "catalog_name", "schema_name", "storage_location"),
    "databricks_mlflow_experiment": ("artifact_location",),
    "databricks_grants": ("function", "catalog", "schema", "model", "table", "volume", "metastore"),
    "databricks_permissions": (
        "job_id",
        "experiment_id",
        "registered_model_id",
        "cluster_id",
        "directory_path",
    ),
}
# Read back by the provider, or suppressed in its diff: never a planned change.
COMPUTED: dict[str, frozenset[str]] = {
    "databricks_job": frozenset({"id", "url", "format", "run_as", "run_if", "source"}),
    "databricks_registered_model": frozenset({"id", "owner", "storage_location", "metastore_id"}),
    "databricks_mlflow_experiment": frozenset({"id", "experiment_id", "lifecycle_stage", "artifact_location",
                                               "creation_time", "last_update_time"}),
    "databricks_grants": frozenset({"id"}),
    "databricks_permissions": frozenset({"id", "object_type"}),
}  # fmt: skip
_REFERENCE = re.compile(r"^\$\{([a-z_]+)\.([A-Za-z0-9_]+)\.([a-z_]+)\}$")
_METADATA = re.compile(
    r"^(?:/Workspace)?(?P<root>/Users/[^/]+/\.bundle/(?P<bundle>[^/]+)/(?P<target>[^/]+))/state/metadata\.json$"
)


def classify(address: str) -> str | None:
    """``adopted`` (a bundle's: `--from` must hold it), ``created`` (access this stack adds) or None."""
    if address in bundle.OBJECTS or address in ADOPTED_SUBRESOURCES:
        return "adopted"
    return "created" if CREATED.match(address) else None


def managed(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{address: attributes}`` of a state document's managed resources."""
    out: dict[str, dict[str, Any]] = {}
    for resource in doc.get("resources", []):
        if resource.get("mode") == "managed" and resource.get("instances"):
            out[f"{resource['type']}.{resource['name']}"] = resource["instances"][0].get("attributes", {})
    return out


def declared(stack: Mapping[str, Any]) -> list[str]:
    return sorted(f"{t}.{n}" for t, items in stack.get("resource", {}).items() for n in items)


def from_problems(doc: Mapping[str, Any], stack: Mapping[str, Any], stack_name: str) -> list[str]:
    """Why ``--from`` cannot be this stack's starting state: an adopted address it lacks, one it
    holds that the stack does not declare, an address of the stack nobody classified."""
    held = managed(doc)
    ours = declared(stack)
    problems = [f"{a}: in the state but not in {stack_name}" for a in sorted(held) if a not in ours]
    missing = [a for a in ours if classify(a) == "adopted" and a not in held]
    if missing:
        problems.append(
            f"the state lacks {', '.join(missing)}: the first apply would create them (duplicate jobs with "
            "running schedules, a failed create of the model and experiment). Export the bundle's state "
            "before unbinding anything (runbook step 3)"
        )
    problems += [f"{a}: declared by {stack_name}, but ops adopt does not know it (ops/adopt.py classify)"
                 for a in ours if classify(a) is None]  # fmt: skip
    return problems


def metadata_root(doc: Mapping[str, Any]) -> str | None:
    """The bundle's root (``/Users/<who>/.bundle/<name>/<target>``) from the jobs' metadata path."""
    for job in managed(doc).values():
        for deployment in job.get("deployment") or []:
            match = _METADATA.match(str(deployment.get("metadata_file_path", "")))
            if match:
                return match["root"]
    return None


# --- names and the expected plan --------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One attribute of an adopted resource that the first apply changes."""

    address: str
    path: str
    before: Any
    after: Any
    replaces: bool = False

    def __str__(self) -> str:
        verb = "REPLACES the resource" if self.replaces else "in place"
        return f"{self.address}: {self.path}: {json.dumps(self.before)} -> {json.dumps(self.after)} ({verb})"


def _zero(value: Any) -> bool:
    return value in (None, "", 0, False, [], {})


def _strip(value: Any) -> Any:
    """A state value without its zero-valued fields (how the provider compares set elements)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not _zero(v)}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


class _Diff:
    def __init__(self, state: Mapping[str, dict[str, Any]]) -> None:
        self.state = state
        self.changes: list[Change] = []

    def resolve(self, value: Any) -> Any:
        """A ``${type.name.attr}`` reference, resolved from the state it will be read from."""
        match = _REFERENCE.match(value) if isinstance(value, str) else None
        if match is None:
            return value
        rtype, name, attr = match.groups()
        return self.state.get(f"{rtype}.{name}", {}).get(attr, value)

    def block(
        self, address: str, rtype: str, path: str, ours: Mapping[str, Any], theirs: Mapping[str, Any]
    ) -> None:
        top = not path
        for key, value in ours.items():
            if key in ("//", "depends_on", "provider", "lifecycle") and top:
                continue
            self.value(address, rtype, f"{path}{key}", key, ours=self.resolve(value), theirs=theirs.get(key))
        for key, value in theirs.items():
            if key not in ours and not _zero(value) and key not in COMPUTED.get(rtype, ()):
                self.changes.append(Change(address, f"{path}{key}", value, None))

    def value(self, address: str, rtype: str, path: str, key: str, *, ours: Any, theirs: Any) -> None:
        if isinstance(ours, dict) and isinstance(theirs, list):  # a nested block: a list in state
            if len(theirs) == 1 and isinstance(theirs[0], dict):
                self.block(address, rtype, f"{path}.", ours, theirs[0])
            else:
                self.changes.append(Change(address, path, _strip(theirs) or None, ours))
        elif isinstance(ours, list) and ours and isinstance(ours[0], dict) and key == "task":
            for i, (mine, other) in enumerate(
                zip(ours, theirs or [], strict=False)
            ):  # by position, as the provider
                self.block(address, rtype, f"{path}[{i}].", mine, other)
            if len(ours) != len(theirs or []):
                self.changes.append(Change(address, f"{path}[*]", len(theirs or []), len(ours)))
        elif isinstance(ours, list) and ours and isinstance(ours[0], dict):  # a set of blocks
            if sorted(map(json.dumps, map(_strip, ours))) != sorted(map(json.dumps, _strip(theirs or []))):
                self.changes.append(Change(address, path, _strip(theirs), ours))
        elif ours != theirs and not (_zero(theirs) and _zero(ours)):
            force_new = key in FORCE_NEW.get(rtype, ()) and path == key
            if (
                force_new
                and isinstance(ours, str)
                and isinstance(theirs, str)
                and ours.lower() == theirs.lower()
            ):
                return  # the model's names compare case-insensitively
            self.changes.append(Change(address, path, theirs, ours, force_new))


def expected_changes(state_doc: Mapping[str, Any], stack: Mapping[str, Any]) -> list[Change]:
    """The changes the first plan of ``stack`` (synthesized JSON) over ``state_doc`` shows for the
    resources the state holds: the provider's diff, worked out from its schema (what it computes,
    suppresses and replaces on), for the attributes this project writes."""
    state_attrs = managed(state_doc)
    diff = _Diff(state_attrs)
    for rtype, items in stack.get("resource", {}).items():
        for name, ours in items.items():
            address = f"{rtype}.{name}"
            if address in state_attrs:
                diff.block(address, rtype, "", ours, state_attrs[address])
    return diff.changes


def _without_workspace(path: Any) -> Any:
    return path.removeprefix("/Workspace") if isinstance(path, str) else path


def name_mismatches(
    state_doc: Mapping[str, Any], stack: Mapping[str, Any], project: str, target: str
) -> list[str]:
    """Why ``state_doc`` is not the state of the deployment ``stack`` describes (empty: it is):
    another bundle or target, a replacement, or a job's name or task keys changed in place, which
    would silently rewrite another deployment's jobs."""
    problems = []
    for address, job in managed(state_doc).items():
        for deployment in job.get("deployment") or []:
            match = _METADATA.match(deployment.get("metadata_file_path", ""))
            if match and (match["bundle"], match["target"]) != (project, target):
                problems.append(
                    f"{address}: the state is bundle {match['bundle']!r}, target {match['target']!r}; "
                    f"this environment is project {project!r}, target {target!r}"
                )
    for change in expected_changes(state_doc, stack):
        leaf = re.sub(r"\[\d+\]", "", change.path).rsplit(".", 1)[-1]
        if change.replaces or (change.address.startswith("databricks_job.") and leaf in ("name", "task_key")):
            problems.append(f"{change} : the names must be the deployed ones")
    return problems


# --- what the jobs do -------------------------------------------------------------------------------

# Base parameters set from the environment, and the tfvars keys that set them.
PARAMETER_KEYS: dict[str, tuple[str, ...]] = {
    "env": ("databricks.target",),
    "catalog": ("databricks.catalog", "databricks.target"),
    "schema": ("databricks.schema", "databricks.project"),
    "model_name": ("databricks.model_name", "databricks.catalog", "databricks.schema", "databricks.project"),
    "experiment_name": ("databricks.experiment_path",),
    "input_table_name": ("databricks.batch_inference.input_table",),
    "output_table_name": ("databricks.batch_inference.output_table",),
    "training_data_path": ("databricks.training.training_data_path",),
}
_VALIDATION = ("run_mode", "enable_baseline_comparison", "validation_input", "model_type", "targets")
# Per job: the key that lists its extra parameters (what is not there is meant to go), its
# notebooks and its cluster.
JOB_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "databricks_job.model_training_job": {
        "parameters": ("databricks.training.tasks", "databricks.training.layout"),
        "notebook": ("databricks.files_root", "databricks.training.tasks"),
        "cluster": ("databricks.training.existing_cluster_id", "databricks.job_cluster"),
    },
    "databricks_job.batch_inference_job": {
        "parameters": ("databricks.batch_inference.parameters",),
        "notebook": ("databricks.files_root", "databricks.batch_inference.notebook"),
        "cluster": ("databricks.batch_inference.existing_cluster_id", "databricks.job_cluster"),
    },
}
_CLUSTER = re.compile(r"(^|\.)(existing_cluster_id|job_cluster_key|job_cluster|new_cluster)(\.|$)")


@dataclass(frozen=True)
class Behaviour:
    """A change of what an adopted object does, and the tfvars keys any of which makes it intended
    (none: it needs no key, e.g. a run-context parameter every task gets)."""

    address: str
    what: str
    before: Any
    after: Any
    keys: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.address}: {self.what}: {json.dumps(self.before)} -> {json.dumps(self.after)}"


def _parameters(address: str, task: str, before: Any, after: Any) -> Iterator[Behaviour]:
    old = dict(before or {}) if isinstance(before, dict) else {}
    new = dict(after or {}) if isinstance(after, dict) else {}
    job_keys = JOB_KEYS.get(address, {}).get("parameters", ())
    context = {k: new[k] for k in sorted(new) if k not in old and k in RUN_CONTEXT_PARAMETERS}
    if context:  # the run context is every task's: it needs no key
        yield Behaviour(address, f"{task}.base_parameters (run context)", None, context, ())
    for name in sorted(old.keys() | new.keys()):
        if old.get(name) == new.get(name) or name in context:
            continue
        what = f"{task}.base_parameters.{name}"
        if name not in old or name not in new:  # added or dropped: the job's list of extra parameters
            keys = job_keys
        else:
            keys = PARAMETER_KEYS.get(name) or (
                ("databricks.training.validation",) if name in _VALIDATION else job_keys
            )
        yield Behaviour(address, what, old.get(name), new.get(name), keys)


def behaviour_changes(state_doc: Mapping[str, Any], stack: Mapping[str, Any]) -> list[Behaviour]:
    """The changes of what the adopted jobs do (notebooks, parameters, cluster, run_as) and of the
    model's owner that the first apply makes, each with the keys that can make it intended."""
    found: list[Behaviour] = []
    seen: set[tuple[str, str]] = set()
    for change in expected_changes(state_doc, stack):
        address, path = change.address, change.path
        task = path.split(".", 1)[0] if path.startswith("task[") else ""
        if address.startswith("databricks_job."):
            keys = JOB_KEYS.get(address, {})
            if path.endswith(".notebook_task.base_parameters"):
                found += _parameters(address, task, change.before, change.after)
            elif path.endswith(".notebook_path"):
                if _without_workspace(change.before) != _without_workspace(change.after):
                    found.append(
                        Behaviour(address, path, change.before, change.after, keys.get("notebook", ()))
                    )
            elif path.startswith("run_as") and (address, "run_as") not in seen:
                seen.add((address, "run_as"))
                before = (managed(state_doc)[address].get("run_as") or [None])[0]
                after = stack["resource"]["databricks_job"][address.split(".", 1)[1]].get("run_as")
                found.append(
                    Behaviour(
                        address, "run_as", _strip(before), after, ("databricks.run_as_service_principal",)
                    )
                )
            elif _CLUSTER.search(path) and (address, "cluster") not in seen:
                seen.add((address, "cluster"))
                found.append(
                    Behaviour(
                        address, f"cluster ({path})", change.before, change.after, keys.get("cluster", ())
                    )
                )
        elif address == "databricks_registered_model.model" and path == "owner":
            found.append(Behaviour(address, path, change.before, change.after, ("databricks.model.owner",)))
    return found


def written_keys(model: BaseModel, prefix: str) -> set[str]:
    """The dotted tfvars keys of ``model`` written in the file (pydantic's ``model_fields_set``),
    parents included."""
    keys: set[str] = set()
    for name in model.model_fields_set:
        field = type(model).model_fields[name]
        key = f"{prefix}.{field.alias or name}"
        keys.add(key)
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            keys |= written_keys(value, key)
    return keys


def judge(changes: Sequence[Behaviour], written: set[str], tfvars_file: str) -> tuple[list[str], list[str]]:
    """``(intended, refused)``: a change is intended when it needs no key or one of its keys is
    written; refused ones are ``file: key: problem`` lines."""
    intended, refused = [], []
    for change in changes:
        given = [k for k in change.keys if k in written]
        if not change.keys:
            intended.append(f"{change} (the run context every task gets)")
        elif given:
            intended.append(f"{change} (written: {given[0]})")
        else:
            refused.append(
                f"{tfvars_file}: {change.keys[0]}: not written, yet the first apply changes {change}: write "
                "the adopted value to keep it, or the new one to change it on purpose"
            )
    return intended, refused


# --- the plan ---------------------------------------------------------------------------------------


def plan_refusals(plan: Mapping[str, Any], adopted: Sequence[str]) -> list[str]:
    """What in a ``terraform show -json`` plan must not be applied to an adopted state: any
    delete (a replacement too), and a create of an address the state should have held."""
    refusals = []
    for change in plan.get("resource_changes", []):
        actions = change.get("change", {}).get("actions", [])
        address = change.get("address", "?")
        if "delete" in actions:
            what = "replace" if "create" in actions else "delete"
            refusals.append(f"{address}: {what} ({'/'.join(actions)})")
        elif "create" in actions and address in adopted:
            refusals.append(f"{address}: create (the adopted state should hold it)")
    return refusals


def planned_updates(plan: Mapping[str, Any]) -> Iterator[str]:
    for change in plan.get("resource_changes", []):
        actions = change.get("change", {}).get("actions", [])
        if actions not in (["no-op"], ["read"]):
            yield f"{change.get('address')}: {'/'.join(actions)}"


def terraform_plan(stack_dir: Path, state_file: Path) -> dict[str, Any]:
    """``terraform show -json`` of the stack's plan against a local copy of ``state_file``."""
    with tempfile.TemporaryDirectory(prefix="adopt-plan-") as scratch:
        work = Path(scratch) / stack_dir.name
        shutil.copytree(
            stack_dir, work, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "*.tfplan")
        )
        copy = Path(scratch) / "adopted.tfstate"
        shutil.copy2(state_file, copy)
        override = {"terraform": {"backend": {"local": {"path": str(copy)}}}}
        (work / "adopt_override.tf.json").write_text(json.dumps(override))
        tf = Terraform(work)
        tf.init("-reconfigure")
        tf.run("plan", "-input=false", "-no-color", "-lock=false", "-out=adopt.tfplan")
        shown: dict[str, Any] = json.loads(tf.run("show", "-json", "adopt.tfplan").stdout)
    return shown


# --- moving the state -------------------------------------------------------------------------------


def push_state(tf: Terraform, source: Path) -> tuple[StateInfo, bool]:
    """Put ``source`` at ``tf``'s backend, lineage kept. ``(state there, whether it already was)``."""
    wanted = state_info(source.read_text(encoding="utf-8"), str(source))
    existing = tf.pull()
    if existing is not None:
        if existing.lineage == wanted.lineage and existing.serial >= wanted.serial:
            return existing, True
        raise CommandError(
            f"our key already holds a state ({existing}); refusing to replace it with {source} ({wanted})"
        )
    return state.push_keeping_lineage(tf, source), False


@dataclass(frozen=True)
class Checked:
    """What ``check`` found: the adopted addresses, the changes the first apply makes, the plan's
    updates and the intended changes of what the jobs do."""

    adopted: tuple[str, ...]
    changes: tuple[Change, ...]
    planned: tuple[str, ...]
    intended: tuple[str, ...]


PlanFunction = Callable[[Path, Path], dict[str, Any]]


def read_state(source: Path) -> dict[str, Any]:
    try:
        doc = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"--from {source}: not a readable state file ({exc})") from None
    if not isinstance(doc, dict):
        raise CommandError(f"--from {source}: not a state file")
    if "state_version" in doc:
        raise CommandError(
            f"--from {source} is a bundle's resources.json (direct engine), not a Terraform state: adopt "
            "the terraform.tfstate exported before the bundle's migration (runbook step 3)"
        )
    return doc


def check(
    stack_dir: Path,
    source: Path,
    env: Environment,
    *,
    target: str,
    plan: PlanFunction = terraform_plan,
) -> Checked:
    """Checks 1-4 of the module docstring: ``--from`` complete, names ours, every change of what
    the jobs do written in the environment file, a plan without delete, replace or create of an
    adopted address. CommandError naming every problem; nothing is changed anywhere."""
    stack = json.loads((stack_dir / "cdk.tf.json").read_text(encoding="utf-8"))
    doc = read_state(source)
    problems = from_problems(doc, stack, stack_dir.name)
    problems += [f"{r.get('type')}.{r.get('name')}: provider {r.get('provider')}" for r in doc.get("resources", [])
                 if r.get("provider") != PROVIDER]  # fmt: skip
    if doc.get("version") != 4:
        problems.append(f"state format version {doc.get('version')}, expected 4")
    problems += name_mismatches(doc, stack, env.names.databricks.project, target)
    written = written_keys(env.settings.databricks, "databricks")
    intended, refused = judge(behaviour_changes(doc, stack), written, env.tfvars_file)
    problems += refused
    if problems:
        raise CommandError(
            f"{source} cannot become {stack_dir.name}'s state; nothing was changed:\n  "
            + "\n  ".join(problems)
        )
    adopted = tuple(a for a in declared(stack) if classify(a) == "adopted")
    shown = plan(stack_dir, source)
    refusals = plan_refusals(shown, adopted)
    if refusals:
        raise CommandError(
            "the plan over the adopted state would " + "; ".join(refusals) + ". Nothing was pushed: make the "
            "environment's names equal the deployed ones first"
        )
    return Checked(
        adopted, tuple(expected_changes(doc, stack)), tuple(planned_updates(shown)), tuple(intended)
    )


# --- the bundle now ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleNow:
    """What the bundle holds and declares of the adopted addresses now."""

    managed: tuple[str, ...]
    declared: tuple[str, ...] = ()
    state_file: str = "terraform.tfstate"  # where the leftovers are: terraform.tfstate or resources.json


def bundle_now(
    adopted: Sequence[str],
    state_dir: str,
    target: str,
    bundle_state: Path | None,
    run: bundle.Runner | None,
) -> BundleNow:
    """From ``bundle_state`` (a file the operator exported), else through the CLI (``run``):
    ``bundle summary`` and the state folder. Fails closed (bundle.py)."""
    if bundle_state is not None:
        try:
            text = bundle_state.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--bundle-state {bundle_state}: {exc}") from None
        held = bundle.state_addresses(text, f"--bundle-state {bundle_state}")
        kind = "resources.json" if '"state_version"' in text else "terraform.tfstate"
        return BundleNow(tuple(a for a in adopted if a in held), (), kind)
    if run is None:
        raise UsageError(
            "cannot tell whether the bundle still manages these resources: pass --bundle-state FILE (the "
            f"bundle's current state: `databricks workspace export {state_dir}/terraform.tfstate --file FILE`), "
            "or install the databricks CLI"
        )
    summary = run(["databricks", "bundle", "summary", "-t", target, "--output", "json"])
    if not summary.ok:
        raise CommandError(f"`databricks bundle summary -t {target}` failed: {summary.stderr.strip()}")
    try:
        status = bundle.summary_status(json.loads(summary.stdout), adopted)
    except (ValueError, AttributeError):
        raise CommandError(
            f"`databricks bundle summary -t {target} --output json` did not print a summary"
        ) from None
    reader = bundle.CliStateReader(run)
    names = reader.list(state_dir) or []
    held = bundle.managed_in_state(reader, state_dir)
    found = sorted({a for a in adopted if a in held} | set(status.managed))
    kind = (
        "resources.json"
        if "resources.json" in names and "terraform.tfstate" not in names
        else "terraform.tfstate"
    )
    return BundleNow(tuple(found), status.declared, kind)


def unbind_or_refuse(
    now: BundleNow,
    *,
    target: str,
    state_dir: str,
    keep: Path,
    run: bundle.Runner | None,
    do_unbind: bool,
    console: Console,
) -> bool:
    """Refuse while the bundle manages an adopted address, printing what to run; with
    ``do_unbind`` run the unbinds first when the CLI can (True: something was unbound, read the
    bundle again)."""
    objects = [a for a in now.managed if a in bundle.OBJECTS]
    leftovers = [a for a in now.managed if a not in bundle.OBJECTS]
    if objects:
        version = bundle.cli_version(run) if run is not None else None
        too_old = bundle.unbind_too_old(version, objects)
        commands = [bundle.unbind_command(a, target) for a in objects]
        if do_unbind and run is not None and not too_old:
            for command in commands:
                result = run(command)
                if not result.ok:
                    raise CommandError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
                console.line(f"unbound: {' '.join(command)}")
            return True
        steps = "\n  ".join(" ".join(c) for c in commands)
        notes = "".join(f"\n  note: {p}" for p in too_old)
        how = (
            "--unbind ran nothing: install a newer Databricks CLI, then run"
            if do_unbind and too_old
            else "with the resources still in databricks.yml, run in the bundle's checkout (or pass --unbind)"
        )
        raise CommandError(
            f"the bundle still manages {', '.join(objects)}: its next deploy would destroy them, or keep them "
            f"from us. {how[0].upper()}{how[1:]}:\n  {steps}{notes}\nthen run this command again; nothing was changed"
        )
    if leftovers:
        path = f"{state_dir}/{now.state_file}"
        if now.state_file == "resources.json":
            steps = (f"export {path}, delete the keys of {', '.join(leftovers)} from its \"state\" object, import it "
                     "back (databricks workspace import --format AUTO --overwrite)")  # fmt: skip
        else:
            steps = "\n  ".join(bundle.leftover_steps(leftovers, path, keep, target))
        raise CommandError(
            f"unbind left {', '.join(leftovers)} in the bundle's state (unbind drops an experiment's "
            f"permissions on no CLI version, a job's permissions and the model's grants only from "
            f"{bundle.show(bundle.UNBIND_DROPS_SUBRESOURCES)}); its next deploy would reset them. Remove them "
            f"(this never touches {keep.name}):\n  {steps}\nthen run this command again; nothing was changed"
        )
    return False


def declaration_problems(now: BundleNow, branches: Sequence[str], checkout: Path | None) -> list[str]:
    problems = [
        f"the bundle configuration in {checkout} declares {a}: its next deploy would create a new copy"
        for a in now.declared
    ]
    if checkout is not None:
        problems += bundle.declared_on_branches(checkout, branches, bundle.OBJECTS)
    return problems


def adopt(
    stack_dir: Path,
    source: Path,
    env: Environment,
    *,
    target: str,
    bundle_state: Path | None = None,
    bundle_dir: Path | None = None,
    branches: Sequence[str] = (),
    do_unbind: bool = False,
    confirm: Callable[[Sequence[str]], bool] = lambda _intended: True,
    run: bundle.Runner | None = None,
    plan: PlanFunction = terraform_plan,
    tf_env: Mapping[str, str] | None = None,
    console: Console | None = None,
) -> tuple[Checked, StateInfo, bool]:
    """The whole module docstring. Returns the checks' findings, the state now at our key and
    whether it already was there."""
    console = console or Console()
    if not branches:
        raise UsageError(
            "name the bundle's branches that deploy (--branch, e.g. --branch origin/main --branch "
            "origin/release): adoption checks that none of them declares the adopted resources any more"
        )
    if bundle_dir is None:
        raise UsageError("--bundle-dir: the bundle's git checkout is needed to read its branches")
    checked = check(stack_dir, source, env, target=target, plan=plan)
    doc = read_state(source)
    root = metadata_root(doc)
    if root is None:
        raise CommandError(
            f"--from {source}: no job names its bundle's metadata.json: cannot find the bundle's state"
        )
    state_dir = naming.databricks_state_dir(root)
    for _ in range(2):  # once more after --unbind
        now = bundle_now(checked.adopted, state_dir, target, bundle_state, run)
        if not unbind_or_refuse(
            now,
            target=target,
            state_dir=state_dir,
            keep=source,
            run=run,
            do_unbind=do_unbind,
            console=console,
        ):
            break
    else:
        raise CommandError(
            "the bundle still manages some resources after unbinding them; nothing was changed"
        )
    problems = declaration_problems(now, branches, bundle_dir)
    if problems:
        raise CommandError(
            "the bundle's configuration still declares adopted resources; remove them from every branch "
            "(after unbinding every target: the configuration is shared) and disable the template's "
            "deploying workflows (runbook); nothing was changed:\n  " + "\n  ".join(problems)
        )
    if checked.intended and not confirm(checked.intended):
        raise CommandError("not confirmed; nothing was changed")
    with state.backend_only(stack_dir, tf_env) as tf:
        after, already = push_state(tf, source)
    return checked, after, already


# --- a first apply ----------------------------------------------------------------------------------


def first_apply_problems(names: DatabricksNames, workspace: Workspace) -> list[str]:
    """Why a first apply of ``databricks-<env>`` (its state holds nothing) must not run: the
    bundle's state at the environment's bundle roots still holds one of our addresses (the same
    read ``ops adopt`` makes), or a job, the experiment or the model of the same name already
    exists (the apply would duplicate the jobs and fail on the rest). An answer other than "not
    there" is a problem too."""
    problems = []
    reader = bundle.ApiStateReader(workspace)
    for root in names.bundle_roots:
        state_dir = naming.databricks_state_dir(root)
        try:
            held = bundle.managed_in_state(reader, state_dir)
        except CommandError as exc:
            problems.append(str(exc))
            continue
        ours = sorted(a for a in held if classify(a) is not None)
        if ours:
            problems.append(f"the bundle's state in {state_dir} still holds {', '.join(ours)}")
    checks: list[tuple[str, Callable[[], bool]]] = [
        (f"job {name!r}", partial(_job_exists, workspace, name))
        for name in (names.training_job_name, names.batch_inference_job_name)
    ]
    checks += [
        (
            f"experiment {names.experiment_path}",
            partial(_exists, workspace, "/api/2.0/mlflow/experiments/get-by-name",
                    {"experiment_name": names.experiment_path}),
        ),
        (
            f"registered model {names.model_full_name}",
            partial(_exists, workspace, f"/api/2.1/unity-catalog/models/{names.model_full_name}", None),
        ),
    ]  # fmt: skip
    for what, exists in checks:
        try:
            if exists():
                problems.append(f"{what} already exists")
        except (ApiError, CommandError) as exc:
            problems.append(f"cannot tell whether {what} exists: {exc}")
    return problems


def _job_exists(workspace: Workspace, name: str) -> bool:
    """``GET /api/2.1/jobs/list?name=`` (exact, case-insensitive: SDK ``JobsAPI.list``) holds a job
    of that name."""
    jobs = workspace.call("GET", "/api/2.1/jobs/list", query={"name": name, "limit": 25}).get("jobs") or []
    return any(isinstance(j, dict) and str((j.get("settings") or {}).get("name", "")).lower() == name.lower()
               for j in jobs)  # fmt: skip


def _exists(workspace: Workspace, path: str, query: Mapping[str, str] | None) -> bool:
    try:
        workspace.call("GET", path, query=query)
    except ApiError as exc:
        if exc.not_found:
            return False
        raise
    return True


# --- the command ------------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "adopt",
        help="make a Databricks bundle's state databricks-ENV's: --from complete, names and what the jobs do "
        "compared, plan refused on any delete/replace/create, bundle unbound and its branches clean, lineage kept",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    synth.add_env_option(parser)
    parser.add_argument("--from", dest="source", type=Path, required=True, metavar="FILE",
                        help="the bundle's state exported before unbinding (every adopted resource)")  # fmt: skip
    parser.add_argument("--bundle-dir", type=Path, metavar="DIR",
                        help="the bundle's git checkout (where databricks.yml is): its branches are read, and "
                             "the databricks CLI is asked there unless --bundle-state")  # fmt: skip
    parser.add_argument("--branch", action="append", default=[], metavar="BRANCH",
                        help="a branch of the bundle that deploys (repeat: --branch origin/main --branch "
                             "origin/release): none may declare the adopted resources")  # fmt: skip
    parser.add_argument("--bundle-state", type=Path, metavar="FILE",
                        help="the bundle's state as it is now (after unbinding), instead of asking the CLI")  # fmt: skip
    parser.add_argument("--unbind", action="store_true",
                        help="run the unbind commands (in --bundle-dir) when the checks pass and the CLI is new enough")  # fmt: skip
    parser.add_argument("--yes", action="store_true", help="do not ask before pushing the intended changes")
    parser.add_argument("--target", help="bundle target (default: the environment's databricks target)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    console = Console()
    [env] = load(args.root, [args.env], "--env")
    if (refused := synth.refuse_placeholders([env])) is not None:
        return refused
    if not args.source.is_file():
        raise UsageError(f"--from {args.source}: no such file")
    if args.bundle_dir is not None and not args.bundle_dir.is_dir():
        raise UsageError(f"--bundle-dir {args.bundle_dir}: no such directory")
    names = env.names.databricks
    target = args.target or names.target
    stack = naming.stack_id("databricks", env.name)
    runner = bundle.cli_runner(args.bundle_dir) if args.bundle_dir is not None and bundle.have_cli() else None
    out = synth.synthesize([env], ("databricks",), synth.outdir(args.root))

    def confirm(intended: Sequence[str]) -> bool:
        lines = [f"the first apply after adopting changes what {stack} does, as {env.tfvars_file} says:"]
        lines += [f"  {line}" for line in intended]
        if args.yes:
            console.line("\n".join(lines))
            return True
        return console.confirm("\n".join(lines), env.name)

    checked, after, already = adopt(
        out / "stacks" / stack,
        args.source,
        env,
        target=target,
        bundle_state=args.bundle_state,
        bundle_dir=args.bundle_dir,
        branches=args.branch,
        do_unbind=args.unbind,
        confirm=confirm,
        run=runner,
        plan=terraform_plan,
        console=console,
    )
    verb = "already adopted" if already else "adopted"
    console.line(f"{verb}: {stack} holds {after} (bundle {names.project}, target {target})")
    console.line("the first apply changes, in place:")
    for change in checked.changes:
        console.line(f"  {change}")
    for line in checked.planned:
        console.line(f"  plan: {line}")
    console.line(f"next: make plan ENV={env.name} STACK=databricks, review, then make deploy ENV={env.name}")
    return 0
