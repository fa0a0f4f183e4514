"""``ops run-job --env E --job model_training_job``: run a deployed Databricks job to completion.

The integration test of the seeds' flow (``databricks bundle run model_training_job -t test``):
after ``databricks-<env>`` is applied, the job it manages is run once and must succeed.

1. The job id is the output ``<job>_id`` of ``databricks-<env>``: ``terraform init`` and
   ``terraform output -json`` in the synthesized stack directory (``ops synth --env E`` first),
   through ``ops.runner.Terraform``.
2. The workspace is ``databricks.host`` of the environment's tfvars; the credentials are those of
   ``ops.databricks_api.token_source``: in CI the job's GitHub OIDC token, exchanged for a
   Databricks token for ``databricks.oidc_audience`` and exchanged again before it expires or
   when refused (a run may outlive one token); else ``$DATABRICKS_TOKEN``. None: exit 2 before
   anything runs.
3. Before the run, the deployed job must be the synthesized one where it matters for running
   (``GET /api/2.1/jobs/get``): each task's notebook path and base parameters, and the identity
   it runs as (``run_as_user_name`` = ``databricks.run_as_service_principal``); and every notebook
   must exist (``GET /api/2.0/workspace/get-status``): otherwise exit 1 naming each difference,
   nothing started.
4. Jobs API 2.1: ``POST /api/2.1/jobs/run-now``, then ``GET /api/2.1/jobs/runs/get?run_id=``
   every ``--poll-interval`` until the run terminates or ``--timeout`` passes (then the run is
   cancelled with ``POST /api/2.1/jobs/runs/cancel`` and the command fails). Exit 0 only for
   ``result_state`` ``SUCCESS``; any other end is exit 1 with the run's state message.

urllib only (``ops.databricks_api``): no Databricks SDK or CLI is needed. ``--api-url`` replaces
the workspace URL (the tests' fake API server; the token exchange goes there too).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops import plan, synth
from ops.databricks_api import ApiError, Workspace, token_source
from ops.runner import CommandError, Console, Terraform, UsageError, automation_env
from platform_config.loader import Environment, load

# Jobs API 2.1 run life cycle states that are final (RunLifeCycleState).
FINAL_STATES = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})
# Answers that mean "try again later" while polling; they count against --timeout.
RETRIED_STATUS = frozenset({429, 500, 502, 503, 504})
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str) -> float:
    """``2h``, ``90m``, ``1h30m``, ``45s`` or plain seconds, as seconds (> 0)."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 2h, 30m, 1h30m or 90s")
    hours, minutes, seconds = match.groups()
    total = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)
    if total <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the duration must be more than 0")
    return total


@dataclass(frozen=True)
class RunResult:
    run_id: int
    life_cycle_state: str
    result_state: str
    state_message: str
    url: str

    @property
    def ok(self) -> bool:
        return self.result_state == "SUCCESS"


class JobsApi:
    """The Jobs 2.1 and workspace calls this command makes."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def run_now(self, job_id: int) -> int:
        doc = self.workspace.call("POST", "/api/2.1/jobs/run-now", {"job_id": job_id})
        run_id = doc.get("run_id")
        if not isinstance(run_id, int):
            raise CommandError(f"run-now of job {job_id} returned no run_id: {doc}")
        return run_id

    def get_job(self, job_id: int) -> dict[str, Any]:
        return self.workspace.call("GET", "/api/2.1/jobs/get", query={"job_id": job_id})

    def get_run(self, run_id: int) -> dict[str, Any]:
        return self.workspace.call("GET", "/api/2.1/jobs/runs/get", query={"run_id": run_id})

    def cancel(self, run_id: int) -> None:
        self.workspace.call("POST", "/api/2.1/jobs/runs/cancel", {"run_id": run_id})


@dataclass(frozen=True)
class ExpectedJob:
    """What the synthesized stack says the job runs: notebook and parameters per task, and as whom."""

    run_as: str
    tasks: Mapping[str, tuple[str, Mapping[str, str]]]


def expected_job(stack_doc: Mapping[str, Any], job: str) -> ExpectedJob:
    resource = (stack_doc.get("resource", {}).get("databricks_job") or {}).get(job)
    if not isinstance(resource, dict):
        raise UsageError(f"the synthesized stack declares no databricks_job.{job}")
    tasks = {
        t["task_key"]: (
            t["notebook_task"]["notebook_path"],
            dict(t["notebook_task"].get("base_parameters") or {}),
        )
        for t in resource.get("task", [])
    }
    return ExpectedJob(str((resource.get("run_as") or {}).get("service_principal_name", "")), tasks)


def preflight_problems(
    expected: ExpectedJob, deployed: Mapping[str, Any], notebook_exists: Callable[[str], bool]
) -> list[str]:
    """Why the deployed job (``jobs/get``) would not run what the stack says, as whom it says."""
    problems = []
    run_as = str(deployed.get("run_as_user_name", ""))
    if expected.run_as and run_as.lower() != expected.run_as.lower():
        problems.append(
            f"runs as {run_as or 'nobody known'}, not {expected.run_as} (databricks.run_as_service_principal)"
        )
    tasks = {t.get("task_key"): t for t in (deployed.get("settings") or {}).get("tasks") or []}
    if set(tasks) != set(expected.tasks):
        problems.append(f"tasks {sorted(map(str, tasks))}, not {sorted(expected.tasks)}")
    for key, (path, parameters) in sorted(expected.tasks.items()):
        notebook = (tasks.get(key) or {}).get("notebook_task") or {}
        if key in tasks and notebook.get("notebook_path") != path:
            problems.append(f"task {key} runs {notebook.get('notebook_path')!r}, not {path!r}")
        if key in tasks and dict(notebook.get("base_parameters") or {}) != dict(parameters):
            problems.append(
                f"task {key} gets parameters {notebook.get('base_parameters')}, not {dict(parameters)}"
            )
    for path in sorted({path for path, _ in expected.tasks.values()}):
        if not notebook_exists(path):
            problems.append(
                f"notebook {path} is not in the workspace: nothing has uploaded the project's code there "
                "(the project's files-only bundle deploy, docs/stacks/databricks.md#where-the-notebooks-come-from)"
            )
    return problems


def run_result(run_id: int, doc: dict[str, Any]) -> RunResult:
    state = doc.get("state") or {}
    return RunResult(
        run_id=run_id,
        life_cycle_state=str(state.get("life_cycle_state", "")),
        result_state=str(state.get("result_state", "")),
        state_message=str(state.get("state_message", "")),
        url=str(doc.get("run_page_url", "")),
    )


def wait_for_run(
    api: JobsApi,
    run_id: int,
    *,
    timeout: float,
    poll_interval: float,
    console: Console,
    label: str,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RunResult:
    """Poll until the run's life cycle state is final; CommandError (after cancelling the run)
    once ``timeout`` seconds have passed. Transient HTTP answers are retried within the time."""
    deadline = clock() + timeout
    last_state = ""
    while True:
        try:
            result = run_result(run_id, api.get_run(run_id))
        except ApiError as exc:
            if exc.status not in RETRIED_STATUS:
                raise CommandError(f"{label}: reading run {run_id} failed: {exc}") from None
            console.progress(label, "", f"run {run_id}: {exc}; retrying")
        else:
            if result.life_cycle_state in FINAL_STATES:
                return result
            if result.life_cycle_state != last_state:
                last_state = result.life_cycle_state
                console.progress(label, "", f"run {run_id} is {last_state}")
        remaining = deadline - clock()
        if remaining <= 0:
            try:
                api.cancel(run_id)
                cancelled = "cancelled it"
            except (ApiError, CommandError) as exc:
                cancelled = f"cancelling it failed too ({exc})"
            raise CommandError(
                f"{label}: run {run_id} did not finish within {timeout:.0f} s (last state "
                f"{last_state or 'unknown'}); {cancelled}"
            )
        sleep(min(poll_interval, remaining))


def job_id_from_outputs(outputs: dict[str, Any], job: str, stack: str) -> int:
    key = f"{job}_id"
    if key not in outputs:
        jobs = sorted(k.removesuffix("_id") for k in outputs if k.endswith("_job_id"))
        raise UsageError(
            f"{stack} has no output {key!r} (is it applied?); jobs it outputs: {', '.join(jobs) or 'none'}"
        )
    value = outputs[key].get("value") if isinstance(outputs[key], dict) else None
    try:
        return int(str(value))
    except ValueError:
        raise CommandError(f"{stack}: output {key} is {value!r}, not a job id") from None


def read_job_id(env: Environment, job: str, root: Path) -> int:
    """``terraform output -json`` of ``databricks-<env>``, initialised like ``ops plan`` does."""
    target = synth.Target("databricks", env.name, synth.outdir(root).resolve())
    if not (target.directory / "cdk.tf.json").is_file():
        raise UsageError(
            f"{target.directory} is not synthesized: run `python -m ops synth --env {env.name}` first"
        )
    tf = Terraform(target.directory, automation_env())
    tf.run(*plan.init_args(root, target))
    text = tf.run("output", "-no-color", "-json").stdout
    try:
        outputs = json.loads(text or "{}")
    except ValueError as exc:
        raise CommandError(f"{target.name}: `terraform output -json` is not JSON ({exc})") from None
    if not isinstance(outputs, dict):
        raise CommandError(f"{target.name}: `terraform output -json` is not an object")
    return job_id_from_outputs(outputs, job, target.name)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = "run a job of databricks-ENV (Jobs API 2.1) and wait for it: the integration test of a deploy"
    parser = subparsers.add_parser("run-job", help=text, description=text)
    synth.add_env_option(parser)
    parser.add_argument(
        "--job",
        required=True,
        help="the job, named as in the stack's outputs without `_id` (e.g. model_training_job)",
    )
    parser.add_argument(
        "--timeout", type=parse_duration, default=parse_duration("2h"), help="give up (and cancel) after (2h)"
    )
    parser.add_argument(
        "--poll-interval", type=parse_duration, default=30.0, help="between two status reads (30s)"
    )
    parser.add_argument(
        "--print-host",
        action="store_true",
        help="print the workspace URL of ENV (databricks.host) and exit",
    )
    parser.add_argument("--api-url", help=argparse.SUPPRESS)  # tests only: the fake API server
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    console = Console()
    [env] = load(args.root, [args.env], "--env")
    if (refused := synth.refuse_placeholders([env])) is not None:
        return refused
    names = env.names.databricks
    host = names.host
    if args.print_host:
        print(host)
        return 0
    base_url = args.api_url or host
    tokens = token_source(base_url, names.oidc_audience)
    label = f"{args.job}-{env.name}"
    job_id = read_job_id(env, args.job, args.root)
    stack_file = (
        synth.Target("databricks", env.name, synth.outdir(args.root).resolve()).directory / "cdk.tf.json"
    )
    expected = expected_job(json.loads(stack_file.read_text(encoding="utf-8")), args.job)
    api = JobsApi(Workspace(base_url, tokens))
    try:
        problems = preflight_problems(
            expected, api.get_job(job_id), lambda path: api.workspace.status(path) is not None
        )
        if problems:
            raise CommandError(
                f"{label}: job {job_id} would not run what databricks-{env.name} declares; nothing started:\n  "
                + "\n  ".join(problems)
            )
        run_id = api.run_now(job_id)
        console.progress(
            label,
            env.name,
            f"started run {run_id} of job {job_id} on {host} as {expected.run_as or 'its owner'}",
        )
        result = wait_for_run(
            api, run_id, timeout=args.timeout, poll_interval=args.poll_interval, console=console, label=label
        )
    except ApiError as exc:
        raise CommandError(f"{label}: Jobs API call failed: {exc}") from None
    where = f" ({result.url})" if result.url else ""
    if result.ok:
        console.progress(label, env.name, f"run {run_id} succeeded{where}")
        return 0
    console.error(
        f"error: {label}: run {run_id} ended {result.life_cycle_state}/{result.result_state or '-'}"
        f"{where}: {result.state_message or 'no state message'}"
    )
    return 1
