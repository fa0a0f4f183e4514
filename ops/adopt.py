"""``ops adopt --env E --from FILE``: make a Databricks bundle's Terraform state ``databricks-<env>``'s.

The bundle keeps its own state: while it still holds one of the six resources, its next
``bundle deploy`` destroys that resource (jobs, experiment and the registered model with every
version need no approval there). So, in this order, the command

1. refuses while the bundle still manages any of them, read from the bundle's current state
   (``--bundle-state``, or the workspace file through the ``databricks`` CLI when it is
   installed, plus ``databricks bundle summary``), and prints the exact ``unbind`` commands and the
   ``terraform state rm`` of what unbind leaves behind;
2. reads ``--from`` (the state exported *before* unbinding, with all six resources) and refuses
   when its names are not ours: bundle and target from the jobs' metadata path, model
   catalog/schema/name, job names, task keys, notebooks, cluster ids, experiment path;
3. plans the stack against a copy of it and refuses any delete, replacement or create of an
   adopted address (``terraform plan`` + ``show -json``);
4. pushes it under our key with its lineage kept (``ops.state``'s empty-key lineage repair).

The test and staging deployments are adopted the same way before ``dev``/``tst`` first deploy
(``--env dev`` adopts target ``test``, ``--env tst`` target ``staging``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops import state, synth
from ops.runner import CommandError, StateInfo, Terraform, UsageError, execute, state_info
from platform_config import naming
from platform_config.loader import load

PROVIDER = 'provider["registry.terraform.io/databricks/databricks"]'
# Bundle config key that `databricks bundle deployment unbind <key>` takes, per Terraform address
# (CLI bundle/deploy/terraform/tfdyn: jobs.<k> -> databricks_job.<k>, ...). Sub-resources have
# none: unbind removes grants/job permissions only since CLI #3642, and never
# `databricks_permissions.mlflow_experiment_experiment` (it looks for `experiment_experiment`).
UNBIND_KEYS = {
    "databricks_job.model_training_job": "model_training_job",
    "databricks_job.batch_inference_job": "batch_inference_job",
    "databricks_mlflow_experiment.experiment": "experiment",
    "databricks_registered_model.model": "model",
}
SUMMARY_GROUPS = {"databricks_job": "jobs", "databricks_mlflow_experiment": "experiments",
                  "databricks_registered_model": "registered_models"}  # fmt: skip
# Attributes whose change replaces the resource (provider 1.99.0 ForceNew).
FORCE_NEW: dict[str, tuple[str, ...]] = {
    "databricks_registered_model": ("name", "catalog_name", "schema_name", "storage_location"),
    "databricks_mlflow_experiment": ("artifact_location",),
    "databricks_grants": ("function", "catalog", "schema", "model", "table", "volume", "metastore"),
    "databricks_permissions": ("job_id", "experiment_id", "registered_model_id", "cluster_id"),
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
    r"^(?:/Workspace)?/Users/[^/]+/\.bundle/(?P<bundle>[^/]+)/(?P<target>[^/]+)/state/metadata\.json$"
)


# --- the bundle still managing resources -----------------------------------------------------------


def managed(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{address: attributes}`` of a state document's managed resources."""
    out: dict[str, dict[str, Any]] = {}
    for resource in doc.get("resources", []):
        if resource.get("mode") == "managed" and resource.get("instances"):
            out[f"{resource['type']}.{resource['name']}"] = resource["instances"][0].get("attributes", {})
    return out


def managed_in_summary(summary: Mapping[str, Any], addresses: Sequence[str]) -> list[str]:
    """Addresses ``databricks bundle summary -o json`` shows with an id (the bundle manages them).
    The summary lists no permissions or grants; only a state file shows those."""
    resources = summary.get("resources") or {}
    found = []
    for address in addresses:
        rtype, key = address.split(".", 1)
        entry = (resources.get(SUMMARY_GROUPS.get(rtype, "")) or {}).get(key) or {}
        if entry.get("id") and entry.get("modified_status") != "deleted":
            found.append(address)
    return found


def unbind_steps(addresses: Sequence[str], target: str, workspace_state: str) -> list[str]:
    """What to run so that the bundle manages none of ``addresses`` any more."""
    steps = [
        f"databricks bundle deployment unbind {UNBIND_KEYS[a]} -t {target}"
        for a in addresses
        if a in UNBIND_KEYS
    ]
    leftovers = [a for a in addresses if a not in UNBIND_KEYS]
    if leftovers:
        steps += [
            f"databricks workspace export {workspace_state} --file bundle-{target}.tfstate",
            f"terraform state rm -state=bundle-{target}.tfstate {' '.join(leftovers)}",
            f"databricks workspace import {workspace_state} --file bundle-{target}.tfstate --format AUTO --overwrite",
        ]
    return steps


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
    """Why ``state_doc`` is not the state of the deployment ``stack`` describes (empty: it is).

    Beyond replacements, a job's name, task keys, notebooks or cluster change in place, which
    would silently rewrite another deployment's jobs: all of them must be equal.
    """
    problems = []
    attrs = managed(state_doc)
    for address, job in attrs.items():
        for deployment in job.get("deployment") or []:
            match = _METADATA.match(deployment.get("metadata_file_path", ""))
            if match and (match["bundle"], match["target"]) != (project, target):
                problems.append(
                    f"{address}: the state is bundle {match['bundle']!r}, target {match['target']!r}; "
                    f"this environment is project {project!r}, target {target!r}"
                )
    identity = {"name", "task_key", "notebook_path", "existing_cluster_id"}
    for change in expected_changes(state_doc, stack):
        leaf = re.sub(r"\[\d+\]", "", change.path).rsplit(".", 1)[-1]
        same_path = _without_workspace(change.before) == _without_workspace(change.after)
        if change.replaces or (leaf in identity and not same_path):
            problems.append(f"{change} : the names must be the deployed ones")
    return problems


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
class Adoption:
    after: StateInfo
    already_done: bool
    changes: tuple[Change, ...]
    planned: tuple[str, ...]


PlanFunction = Callable[[Path, Path], dict[str, Any]]


def adopt(
    stack_dir: Path,
    source: Path,
    *,
    bundle_managed: Sequence[str],
    project: str,
    target: str,
    plan: PlanFunction = terraform_plan,
    env: Mapping[str, str] | None = None,
) -> Adoption:
    """Checks 1-3 of the module docstring, then the push. ``bundle_managed``: the adopted
    addresses the bundle's current state (or summary) still shows."""
    stack = json.loads((stack_dir / "cdk.tf.json").read_text(encoding="utf-8"))
    try:
        doc = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"--from {source}: not a readable state file ({exc})") from None
    adopted = sorted(managed(doc))
    if bundle_managed:
        workspace = _workspace_state(doc) or "<state_path>/terraform.tfstate"
        steps = "\n  ".join(unbind_steps(bundle_managed, target, workspace))
        raise CommandError(
            f"the bundle still manages {', '.join(bundle_managed)}: its next deploy would destroy them. "
            f"Run, in the bundle's checkout:\n  {steps}\nthen check again; nothing was changed"
        )
    declared = {f"{t}.{n}" for t, items in stack.get("resource", {}).items() for n in items}
    problems = [f"{a}: in the state but not in {stack_dir.name}" for a in adopted if a not in declared]
    problems += [f"{r.get('type')}.{r.get('name')}: provider {r.get('provider')}" for r in doc.get("resources", [])
                 if r.get("provider") != PROVIDER]  # fmt: skip
    if doc.get("version") != 4:
        problems.append(f"state format version {doc.get('version')}, expected 4")
    problems += name_mismatches(doc, stack, project, target)
    if problems:
        raise CommandError(f"{source} is not this environment's deployment:\n  " + "\n  ".join(problems))
    shown = plan(stack_dir, source)
    refusals = plan_refusals(shown, adopted)
    if refusals:
        raise CommandError(
            "the plan over the adopted state would " + "; ".join(refusals) + ". Nothing was pushed: make the "
            "environment's names equal the deployed ones first"
        )
    with state.backend_only(stack_dir, env) as tf:
        after, already = push_state(tf, source)
    return Adoption(after, already, tuple(expected_changes(doc, stack)), tuple(planned_updates(shown)))


# --- the command ------------------------------------------------------------------------------------


def _workspace_state(doc: Mapping[str, Any]) -> str | None:
    """The bundle's state file in the workspace, next to the jobs' ``metadata.json``."""
    for job in managed(doc).values():
        for deployment in job.get("deployment") or []:
            path = str(deployment.get("metadata_file_path", ""))
            if _METADATA.match(path):
                return path.removesuffix("metadata.json") + "terraform.tfstate"
    return None


def bundle_managed_now(
    adopted: Sequence[str],
    bundle_state: Path | None,
    bundle_dir: Path | None,
    target: str,
    workspace: str | None,
) -> list[str]:
    """The adopted addresses the bundle still manages: from ``bundle_state``, else through the CLI."""
    if bundle_state is not None:
        try:
            current = managed(json.loads(bundle_state.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise UsageError(f"--bundle-state {bundle_state}: not a readable state file ({exc})") from None
        return [a for a in adopted if a in current]
    if shutil.which("databricks") is None or bundle_dir is None or workspace is None:
        raise UsageError(
            "cannot tell whether the bundle still manages these resources: pass --bundle-state FILE (the "
            f"bundle's current state: `databricks workspace export {workspace or '<state_path>/terraform.tfstate'} "
            "--file FILE`), or --bundle-dir with the databricks CLI installed"
        )
    found: list[str] = []
    summary = execute(["databricks", "bundle", "summary", "-t", target, "-o", "json"], cwd=bundle_dir)
    if not summary.ok:
        raise CommandError(f"`databricks bundle summary -t {target}` failed: {summary.stderr.strip()}")
    found += managed_in_summary(json.loads(summary.stdout), adopted)
    with tempfile.TemporaryDirectory(prefix="bundle-state-") as scratch:
        copy = Path(scratch) / "bundle.tfstate"
        export = execute(
            ["databricks", "workspace", "export", workspace, "--file", str(copy)], cwd=bundle_dir
        )
        if export.ok:  # no file: the bundle holds no Terraform state for the target any more
            current = managed(json.loads(copy.read_text(encoding="utf-8")))
            found += [a for a in adopted if a in current and a not in found]
    return found


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "adopt",
        help="make a Databricks bundle's state databricks-ENV's: unbind checked, names compared, plan "
        "refused on any delete/replace, lineage kept",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    synth.add_env_option(parser)
    parser.add_argument("--from", dest="source", type=Path, required=True, metavar="FILE",
                        help="the bundle's state exported before unbinding (all six resources)")  # fmt: skip
    parser.add_argument("--bundle-state", type=Path, metavar="FILE",
                        help="the bundle's state as it is now (after unbinding): must hold none of them")  # fmt: skip
    parser.add_argument("--bundle-dir", type=Path, metavar="DIR",
                        help="the bundle's checkout, to ask the databricks CLI instead of --bundle-state")  # fmt: skip
    parser.add_argument("--target", help="bundle target (default: the environment's databricks target)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    [env] = load(args.root, [args.env], "--env")
    if (refused := synth.refuse_placeholders([env])) is not None:
        return refused
    if not args.source.is_file():
        raise UsageError(f"--from {args.source}: no such file")
    names = env.names.databricks
    target = args.target or names.target
    doc = json.loads(args.source.read_text(encoding="utf-8"))
    stack = naming.stack_id("databricks", env.name)
    still = bundle_managed_now(
        sorted(managed(doc)), args.bundle_state, args.bundle_dir, target, _workspace_state(doc)
    )
    out = synth.synthesize([env], ("databricks",), synth.outdir(args.root))
    result = adopt(
        out / "stacks" / stack, args.source, bundle_managed=still, project=names.project, target=target
    )
    verb = "already adopted" if result.already_done else "adopted"
    print(f"{verb}: {stack} holds {result.after} (bundle {names.project}, target {target})")
    print("the first apply changes, in place:")
    for change in result.changes:
        print(f"  {change}")
    for line in result.planned:
        print(f"  plan: {line}")
    print(f"next: make plan ENV={env.name} STACK=databricks, review, then make deploy ENV={env.name}")
    return 0
