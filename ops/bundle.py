"""The old Databricks Asset Bundle: what it still manages, what its configuration still declares,
and the CLI that unbinds it. Every check fails closed: an answer it cannot read is a refusal,
never "nothing there".

Sources read (databricks/cli, cited in docs/runbooks/adopt-state.md):

* A bundle keeps its state in ``<root>/state``: ``terraform.tfstate`` (Terraform engine), or
  ``resources.json`` (direct engine: ``bundle deployment migrate`` from v0.279.0, the default for
  new bundles from v1.3.0; ``bundle/direct/dstate/state.go``, keys ``resources.<group>.<key>``
  and ``...<key>.permissions``/``.grants``).
* ``bundle summary -o json`` ``modified_status``: ``deleted`` = still in the bundle's state, gone
  from its configuration: the next deploy destroys it (``bundle/statemgmt/state_load.go``);
  ``created`` = in the configuration, not deployed: the next deploy creates it.
* Any CLI error exits 1 with ``Error: <API message>``; a missing path says ``... doesn't exist``
  (the API's RESOURCE_DOES_NOT_EXIST). Nothing else means "not there".
* ``bundle deployment unbind KEY -t TARGET``: jobs from v0.213.0, experiments from v0.244.0,
  registered models from v0.245.0 (``Resources.FindResourceByConfigKey``); from v0.270.0 it also
  drops ``databricks_permissions.<singular>_<key>`` and ``databricks_grants.<singular>_<key>``
  (``bundle/deploy/terraform/unbind.go``), which catches a job's permissions and the model's
  grants but never the experiment's (``mlflow_experiment_<key>`` vs ``experiment_<key>``). The
  key must still be in the configuration; a deploy that still declares an unbound key creates a
  new copy (``acceptance/bundle/deployment/unbind/job``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from ops.databricks_api import ApiError, Workspace
from ops.runner import CommandError, Result, UsageError, execute

STATE_FILES = ("terraform.tfstate", "resources.json")
# Terraform address of each adopted object -> (bundle resource group, the key unbind takes).
OBJECTS: dict[str, tuple[str, str]] = {
    "databricks_job.model_training_job": ("jobs", "model_training_job"),
    "databricks_job.batch_inference_job": ("jobs", "batch_inference_job"),
    "databricks_mlflow_experiment.experiment": ("experiments", "experiment"),
    "databricks_registered_model.model": ("registered_models", "model"),
}
_TYPES = {"jobs": "databricks_job", "experiments": "databricks_mlflow_experiment",
          "registered_models": "databricks_registered_model"}  # fmt: skip
# How a bundle names an object's permissions and grants in Terraform (tfdyn convert_*.go).
_SUB = {
    ("jobs", "permissions"): "databricks_permissions.job_{key}",
    ("experiments", "permissions"): "databricks_permissions.mlflow_experiment_{key}",
    ("registered_models", "grants"): "databricks_grants.registered_model_{key}",
}
Version = tuple[int, int, int]
MIN_UNBIND: dict[str, Version] = {
    "databricks_job": (0, 213, 0),
    "databricks_mlflow_experiment": (0, 244, 0),
    "databricks_registered_model": (0, 245, 0),
}
UNBIND_DROPS_SUBRESOURCES: Version = (0, 270, 0)
_NOT_FOUND = re.compile(r"doesn't exist|does not exist|RESOURCE_DOES_NOT_EXIST|Not Found", re.IGNORECASE)
_VERSION = re.compile(r"Databricks CLI v(\d+)\.(\d+)\.(\d+)")


def show(version: Version) -> str:
    return "v" + ".".join(map(str, version))


# --- the bundle's state ------------------------------------------------------------------------------


def _direct_address(key: str) -> str | None:
    """``resources.jobs.k`` -> ``databricks_job.k``; ``resources.jobs.k.permissions`` ->
    ``databricks_permissions.job_k``; anything else (other groups) as ``bundle:<key>``."""
    parts = key.split(".")
    if len(parts) < 3 or parts[0] != "resources":
        return None
    group, name = parts[1], parts[2]
    if len(parts) == 3:
        return f"{_TYPES[group]}.{name}" if group in _TYPES else f"bundle:{key}"
    sub = _SUB.get((group, parts[3]))
    return sub.format(key=name) if sub and len(parts) == 4 else f"bundle:{key}"


def state_addresses(text: str, source: str) -> set[str]:
    """The addresses a bundle state document holds: a Terraform state (``terraform.tfstate``) or a
    direct-engine state (``resources.json``). CommandError for anything else."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{source}: not JSON ({exc})") from None
    if isinstance(doc, dict) and isinstance(doc.get("resources"), list) and "lineage" in doc:
        return {
            f"{r.get('type')}.{r.get('name')}"
            for r in doc["resources"]
            if isinstance(r, dict) and r.get("mode") == "managed" and r.get("instances")
        }
    if isinstance(doc, dict) and "state_version" in doc and isinstance(doc.get("state", {}), dict):
        return {a for key in (doc.get("state") or {}) if (a := _direct_address(str(key)))}
    raise CommandError(f"{source}: neither a Terraform state nor a bundle's resources.json")


class StateReader(Protocol):
    """Reads a bundle's state folder: through the ``databricks`` CLI or the workspace API."""

    def list(self, folder: str) -> list[str] | None:
        """File names in ``folder``; None when the folder is not there. Raises otherwise."""
        ...

    def read(self, path: str) -> str: ...


def managed_in_state(reader: StateReader, state_dir: str) -> set[str]:
    """Every address the bundle's state in ``state_dir`` holds (both formats, if both are there)."""
    names = reader.list(state_dir)
    if names is None:
        return set()
    found: set[str] = set()
    for name in STATE_FILES:
        if name in names:
            path = f"{state_dir}/{name}"
            found |= state_addresses(reader.read(path), path)
    return found


Runner = Callable[[Sequence[str]], Result]


def cli_runner(cwd: Path) -> Runner:
    def run(cmd: Sequence[str]) -> Result:
        try:
            return execute(list(cmd), cwd=cwd, timeout=300)
        except FileNotFoundError:
            raise UsageError(
                "the databricks CLI is not installed (https://docs.databricks.com/dev-tools/cli/install)"
            ) from None
        except subprocess.TimeoutExpired:
            raise CommandError(f"`{' '.join(cmd)}` did not answer within 5 minutes") from None

    return run


@dataclass
class CliStateReader:
    run: Runner

    def list(self, folder: str) -> list[str] | None:
        result = self.run(["databricks", "workspace", "list", folder, "--output", "json"])
        if not result.ok:
            if _NOT_FOUND.search(result.stderr):
                return None
            raise CommandError(
                f"cannot tell what the bundle still manages: `databricks workspace list {folder}` failed "
                f"(exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
            )
        try:
            objects = json.loads(result.stdout or "[]")
        except ValueError:
            raise CommandError(f"`databricks workspace list {folder}` did not print JSON") from None
        return [PurePosixPath(str(o.get("path", ""))).name for o in objects if isinstance(o, dict)]

    def read(self, path: str) -> str:
        with tempfile.TemporaryDirectory(prefix="bundle-state-") as scratch:
            copy = Path(scratch) / PurePosixPath(path).name
            result = self.run(["databricks", "workspace", "export", path, "--file", str(copy)])
            if not result.ok or not copy.is_file():
                raise CommandError(
                    f"cannot read the bundle's state: `databricks workspace export {path}` failed "
                    f"(exit {result.returncode}): {result.stderr.strip()}"
                )
            return copy.read_text(encoding="utf-8")


@dataclass
class ApiStateReader:
    workspace: Workspace

    def list(self, folder: str) -> list[str] | None:
        try:
            objects = self.workspace.list_dir(folder)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise CommandError(
                f"cannot tell what the bundle still manages: listing {folder}: {exc}"
            ) from None
        return [PurePosixPath(str(o.get("path", ""))).name for o in objects]

    def read(self, path: str) -> str:
        try:
            return self.workspace.download(path).decode("utf-8")
        except ApiError as exc:
            raise CommandError(f"cannot read the bundle's state {path}: {exc}") from None


# --- the bundle's configuration and summary -------------------------------------------------------


@dataclass(frozen=True)
class SummaryStatus:
    managed: tuple[str, ...]  # in the bundle's state (any status, ``deleted`` too)
    declared: tuple[str, ...]  # in the bundle's configuration of that checkout


def summary_status(summary: Mapping[str, Any], addresses: Iterable[str]) -> SummaryStatus:
    """What ``bundle summary -o json`` says of the adopted objects (it lists no permissions or
    grants: only the state shows those)."""
    resources = summary.get("resources") or {}
    managed, declared = [], []
    for address in sorted(addresses):
        if address not in OBJECTS:
            continue
        group, key = OBJECTS[address]
        entry = (resources.get(group) or {}).get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("id"):
            managed.append(address)
        if entry.get("modified_status") != "deleted":
            declared.append(address)
    return SummaryStatus(tuple(managed), tuple(declared))


def declarations(doc: Any, keys: Mapping[tuple[str, str], str]) -> list[str]:
    """The adopted objects a bundle configuration file declares, top level and per target."""
    if not isinstance(doc, dict):
        return []
    found = []
    blocks: list[tuple[str, Any]] = [("resources", doc.get("resources"))]
    targets = doc.get("targets")
    if isinstance(targets, dict):
        blocks += [
            (f"targets.{t}.resources", (v or {}).get("resources"))
            for t, v in targets.items()
            if isinstance(v, dict)
        ]
    for where, resources in blocks:
        if not isinstance(resources, dict):
            continue
        for (group, key), address in keys.items():
            if isinstance(resources.get(group), dict) and key in resources[group]:
                found.append(f"{where}.{group}.{key} ({address})")
    return found


def declared_on_branches(checkout: Path, branches: Sequence[str], addresses: Iterable[str]) -> list[str]:
    """``<branch>:<file>: declares ...`` for every adopted object any YAML file of the bundle
    declares on the named branches (``git show``, nothing checked out). A branch or file that
    cannot be read is a problem too."""
    import yaml  # type: ignore[import-untyped]  # PyYAML (constraints.txt); read only here

    keys = {OBJECTS[a]: a for a in addresses if a in OBJECTS}
    problems: list[str] = []
    prefix_run = _git(checkout, "rev-parse", "--show-prefix")
    if not prefix_run.ok:
        return [f"{checkout}: not a git checkout ({prefix_run.stderr.strip()})"]
    prefix = prefix_run.stdout.strip()
    for branch in branches:
        listing = _git(checkout, "ls-tree", "-r", "--name-only", "--full-tree", branch, "--", prefix or ".")
        if not listing.ok:
            problems.append(f"{branch}: cannot read the branch ({listing.stderr.strip()}); fetch it first")
            continue
        files = [
            f
            for f in listing.stdout.splitlines()
            if f.endswith((".yml", ".yaml")) and "/.github/" not in f"/{f}"
        ]
        if f"{prefix}databricks.yml" not in files and f"{prefix}databricks.yaml" not in files:
            problems.append(f"{branch}: no databricks.yml under {prefix or 'the repository root'}")
        for name in files:
            shown = _git(checkout, "show", f"{branch}:{name}")
            if not shown.ok:
                problems.append(f"{branch}:{name}: cannot read it ({shown.stderr.strip()})")
                continue
            try:
                doc = yaml.safe_load(shown.stdout)
            except yaml.YAMLError as exc:
                problems.append(f"{branch}:{name}: not YAML ({str(exc).splitlines()[0]})")
                continue
            problems += [f"{branch}:{name}: declares {d}" for d in declarations(doc, keys)]
    return problems


def _git(checkout: Path, *args: str) -> Result:
    # Absolute: `git -C` started inside the checkout would apply a relative path a second time.
    where = checkout.resolve()
    return execute(["git", "-C", str(where), *args], cwd=where, timeout=60)


# --- the CLI that unbinds --------------------------------------------------------------------------


def cli_version(run: Runner) -> Version | None:
    """``databricks --version`` (``Databricks CLI v0.245.0``), or None when it says something else."""
    result = run(["databricks", "--version"])
    match = _VERSION.search(result.stdout + result.stderr) if result.ok else None
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def unbind_too_old(version: Version | None, addresses: Iterable[str]) -> list[str]:
    """Why ``version`` cannot unbind ``addresses`` (empty: it can)."""
    problems = []
    for address in sorted(addresses):
        needed = MIN_UNBIND.get(address.split(".", 1)[0])
        if needed and (version is None or version < needed):
            have = show(version) if version else "an unknown version"
            problems.append(
                f"unbinding {address} needs Databricks CLI {show(needed)} or later; this is {have}"
            )
    return problems


def unbind_command(address: str, target: str) -> list[str]:
    return ["databricks", "bundle", "deployment", "unbind", OBJECTS[address][1], "-t", target]


def leftover_steps(leftovers: Sequence[str], state_path: str, keep: Path | None, target: str) -> list[str]:
    """Commands that take ``leftovers`` (permissions, grants) out of the bundle's state, exporting
    to a file other than ``keep`` (the ``--from`` file: it is never overwritten)."""
    name = f"bundle-{target}-after-unbind.tfstate"
    if keep is not None and keep.name == name:
        name = f"bundle-{target}-after-unbind-2.tfstate"
    return [
        f"databricks workspace export {state_path} --file {name}",
        f"terraform state rm -state={name} {' '.join(leftovers)}",
        f"databricks workspace import {state_path} --file {name} --format AUTO --overwrite",
    ]


def have_cli() -> bool:
    return shutil.which("databricks") is not None
