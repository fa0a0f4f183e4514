"""``ops run-job``: the job id from ``terraform output -json``, the deployed job checked against the
synthesized one, then Jobs API 2.1 run-now and polling, against a fake Databricks workspace (Jobs,
workspace get-status, the OIDC token exchange) and a fake GitHub OIDC token service on 127.0.0.1.
No network, no Databricks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from ops import cli, run_job
from platform_config.loader import load
from tests.cli.support import fake_outdir, repo_copy, write_tool

JOB_ID = 4242
RUN_ID = 7
CLIENT_ID = "5d0c6f3e-2b1a-4c9d-8e7f-6a5b4c3d2e1f"
REQUEST_TOKEN = "gh-request-token"

FAKE_TERRAFORM = r"""
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"stack": os.path.basename(os.getcwd()), "args": args}) + "\n")
if args[0] == "output":
    print(os.environ["FAKE_OUTPUTS"])
"""


@dataclass
class FakeWorkspace:
    """What the fake answers. ``states``: one per runs/get in turn (the last repeats). Exchanged
    tokens live ``lifetime`` s (what the exchange says in ``expires_in``); ``revoke_after``, when
    set, makes the workspace refuse a token that old although it claimed to live longer."""

    states: list[dict[str, str]] = field(default_factory=list)
    job: dict[str, Any] = field(default_factory=dict)
    notebooks: set[str] = field(default_factory=set)
    lifetime: float = 3600.0
    revoke_after: float | None = None
    accepted_audience: str = ""
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    issued: dict[str, float] = field(default_factory=dict)  # token -> when
    audiences: list[str] = field(default_factory=list)
    github_tokens: int = 0
    refused: list[str] = field(default_factory=list)  # token refused with 401, per call
    used: list[str] = field(default_factory=list)  # the token of every accepted API call
    reads: int = 0

    def valid(self, token: str) -> bool:
        if token == "test-token":
            return True
        issued = self.issued.get(token)
        if issued is None:
            return False
        age = time.monotonic() - issued
        limit = self.revoke_after if self.revoke_after is not None else self.lifetime
        return age < limit


@pytest.fixture
def api() -> Iterator[tuple[str, FakeWorkspace]]:
    fake = FakeWorkspace()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def answer(self, status: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def authorized(self) -> bool:
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            with lock:
                if fake.valid(token):
                    fake.used.append(token)
                    return True
                fake.refused.append(token)
            self.answer(401, {"error_code": "UNAUTHENTICATED", "message": "Token is expired"})
            return False

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            if self.path == "/oidc/v1/token":
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                fake.calls.append(
                    ("POST", self.path, {k: v for k, v in form.items() if k != "subject_token"})
                )
                audience = form.get("subject_token", "").partition("|")[2]
                if form.get("client_id") != CLIENT_ID or audience != fake.accepted_audience:
                    self.answer(400, {"error": "invalid_request", "error_code": "INVALID_REQUEST",
                                      "message": "no federation policy matches"})  # fmt: skip
                    return
                with lock:
                    token = f"dbx-{len(fake.issued) + 1}"
                    fake.issued[token] = time.monotonic()
                self.answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": fake.lifetime})
                return
            body = json.loads(raw or b"{}")
            fake.calls.append(("POST", self.path, body))
            if not self.authorized():
                return
            if self.path == "/api/2.1/jobs/run-now":
                if body.get("job_id") != JOB_ID:
                    self.answer(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such job"})
                else:
                    self.answer(200, {"run_id": RUN_ID, "number_in_job": RUN_ID})
            elif self.path == "/api/2.1/jobs/runs/cancel":
                self.answer(200, {})
            else:
                self.answer(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": self.path})

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/github-oidc":
                # GitHub's token service: the audience asked for ends up in the token.
                fake.calls.append(("GET", url.path, query))
                if self.headers.get("Authorization") != f"Bearer {REQUEST_TOKEN}":
                    self.answer(401, {"message": "bad request token"})
                    return
                with lock:
                    fake.github_tokens += 1
                    fake.audiences.append(query.get("audience", ""))
                self.answer(200, {"value": f"gh-jwt-{fake.github_tokens}|{query.get('audience', '')}"})
                return
            fake.calls.append(("GET", url.path, query))
            if not self.authorized():
                return
            if url.path == "/api/2.1/jobs/get" and query.get("job_id") == str(JOB_ID):
                self.answer(200, fake.job)
            elif url.path == "/api/2.0/workspace/get-status":
                if query.get("path") in fake.notebooks:
                    self.answer(200, {"path": query["path"], "object_type": "NOTEBOOK", "language": "PYTHON"})
                else:
                    self.answer(404, {"error_code": "RESOURCE_DOES_NOT_EXIST",
                                      "message": f"Path ({query.get('path')}) doesn't exist."})  # fmt: skip
            elif url.path == "/api/2.1/jobs/runs/get" and query.get("run_id") == str(RUN_ID):
                state = fake.states[min(fake.reads, len(fake.states) - 1)]
                fake.reads += 1
                self.answer(
                    200,
                    {"run_id": RUN_ID, "run_page_url": f"https://example/#job/{JOB_ID}/run/{RUN_ID}",
                     "state": state},
                )  # fmt: skip
            else:
                self.answer(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": self.path})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # shutdown() waits for the loop's next poll: 0.5 s by default, after every test.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


TASKS = {
    "01-prep": ("rag/01_prep", {"env": "test", "catalog": "test"}),
    "02-eval": ("rag/02_eval", {"env": "test", "catalog": "test", "k": "5"}),
}


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api: tuple[str, FakeWorkspace]) -> Path:
    """A repository copy whose synthesized databricks-dev declares a two-task training job, and a
    fake workspace where that job is deployed as declared, with its notebooks in place."""
    repo = repo_copy(tmp_path / "repo")
    outdir = fake_outdir(repo, env="dev", kinds=("databricks",))
    [env] = load(repo, ["dev"])
    names = env.names.databricks
    stack = {
        "resource": {
            "databricks_job": {
                "model_training_job": {
                    "run_as": {"service_principal_name": names.run_as},
                    "task": [
                        {"task_key": key, "notebook_task": {"notebook_path": f"{names.files_root}/{path}",
                                                            "base_parameters": parameters}}
                        for key, (path, parameters) in TASKS.items()
                    ],
                }
            }
        }
    }  # fmt: skip
    (outdir / "stacks" / "databricks-dev" / "cdk.tf.json").write_text(json.dumps(stack))
    _, fake = api
    fake.job = {
        "job_id": JOB_ID,
        "run_as_user_name": names.run_as,
        "settings": {
            "name": names.training_job_name,
            "tasks": [
                {"task_key": key, "notebook_task": {"notebook_path": f"{names.files_root}/{path}",
                                                    "base_parameters": parameters, "source": "WORKSPACE"}}
                for key, (path, parameters) in TASKS.items()
            ],
        },
    }  # fmt: skip
    fake.notebooks = {f"{names.files_root}/{path}" for path, _ in TASKS.values()}
    fake.accepted_audience = names.oidc_audience
    tool = write_tool(tmp_path / "bin", "terraform", FAKE_TERRAFORM)
    monkeypatch.setenv("TERRAFORM_BINARY_NAME", str(tool))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv(
        "FAKE_OUTPUTS",
        json.dumps(
            {
                "model_training_job_id": {"sensitive": False, "type": "string", "value": str(JOB_ID)},
                "batch_inference_job_id": {"sensitive": False, "type": "string", "value": "1"},
            }
        ),
    )
    for name in ("DATABRICKS_AUTH_TYPE", "DATABRICKS_CLIENT_ID", "ACTIONS_ID_TOKEN_REQUEST_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_TOKEN", "test-token")
    return repo


def github_oidc(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """The environment of a GitHub Actions job with `id-token: write` and the client id set."""
    monkeypatch.delenv("DATABRICKS_TOKEN")
    monkeypatch.setenv("DATABRICKS_AUTH_TYPE", "github-oidc")
    monkeypatch.setenv("DATABRICKS_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", f"{url}/github-oidc?api-version=2.0")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN)


def run_cli(root: Path, url: str, *extra: str) -> int:
    return cli.main(
        [
            "--root",
            str(root),
            "run-job",
            "--env",
            "dev",
            "--job",
            "model_training_job",
            "--poll-interval",
            "0.02",
            "--api-url",
            url,
            *extra,
        ]
    )


def terminated(result: str, message: str = "") -> dict[str, str]:
    return {"life_cycle_state": "TERMINATED", "result_state": result, "state_message": message}


RUNNING = {"life_cycle_state": "RUNNING", "state_message": "In run"}


def paths(fake: FakeWorkspace) -> list[str]:
    return [c[1] for c in fake.calls]


def test_a_successful_run_exits_0(
    root: Path, api: tuple[str, FakeWorkspace], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url, fake = api
    fake.states = [{"life_cycle_state": "PENDING"}, RUNNING, RUNNING, terminated("SUCCESS")]
    assert run_cli(root, url) == 0
    # The deployed job is checked first: its settings, then each notebook; then it is started.
    assert paths(fake)[:3] == ["/api/2.1/jobs/get", *["/api/2.0/workspace/get-status"] * 2]
    assert fake.calls[3] == ("POST", "/api/2.1/jobs/run-now", {"job_id": JOB_ID})
    assert paths(fake)[4:] == ["/api/2.1/jobs/runs/get"] * 4
    assert set(fake.used) == {"test-token"}
    out = capsys.readouterr().out
    assert f"started run {RUN_ID} of job {JOB_ID}" in out and "succeeded" in out
    assert f"as {fake.job['run_as_user_name']}" in out
    # The id came from the stack directory's outputs, after an init.
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert [c["args"][0] for c in calls] == ["init", "output"]
    assert {c["stack"] for c in calls} == {"databricks-dev"}
    assert "-json" in calls[1]["args"]


# --- issue 23 (4): tokens that last the job ---------------------------------------------------------


def test_a_run_outliving_its_token_goes_on_with_new_ones(
    root: Path, api: tuple[str, FakeWorkspace], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tokens of 0.4 s, a run of about 1.2 s: every call uses a live token, exchanged again from a
    new GitHub token when half its life has passed; none is refused."""
    url, fake = api
    github_oidc(monkeypatch, url)
    fake.lifetime = 0.4
    fake.states = [*[RUNNING] * 40, terminated("SUCCESS")]
    started = time.monotonic()
    assert run_cli(root, url, "--poll-interval", "0.03") == 0
    assert time.monotonic() - started > 1.0, "the run must outlive several tokens"
    assert fake.refused == []
    assert len(fake.issued) >= 3 and fake.github_tokens == len(fake.issued)
    assert len(set(fake.used)) >= 3
    # Explicit audience: the environment file's, on every GitHub token.
    [env] = load(root, ["dev"])
    assert set(fake.audiences) == {env.names.databricks.oidc_audience}
    exchange = next(c[2] for c in fake.calls if c[1] == "/oidc/v1/token")
    assert exchange == {
        "client_id": CLIENT_ID,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "scope": "all-apis",
    }


def test_a_token_refused_mid_run_is_exchanged_again(
    root: Path, api: tuple[str, FakeWorkspace], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workspace stops accepting a token after 0.3 s although it claimed an hour: the 401 gets
    one more try with a new token, and the run is followed to its end."""
    url, fake = api
    github_oidc(monkeypatch, url)
    fake.revoke_after = 0.3
    fake.states = [*[RUNNING] * 30, terminated("SUCCESS")]
    assert run_cli(root, url, "--poll-interval", "0.03") == 0
    assert fake.refused, "no token was refused: the test proves nothing"
    assert len(fake.issued) == len(fake.refused) + 1
    assert fake.reads == 31


def test_a_policy_that_does_not_match_the_audience_fails_before_the_run(
    root: Path,
    api: tuple[str, FakeWorkspace],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, fake = api
    github_oidc(monkeypatch, url)
    fake.accepted_audience = "https://github.com/some-org"
    assert run_cli(root, url) == 1
    err = capsys.readouterr().err
    assert "HTTP 400 INVALID_REQUEST: no federation policy matches" in err
    assert f"service principal {CLIENT_ID}" in err and "audience" in err
    assert "/api/2.1/jobs/run-now" not in paths(fake)


@pytest.mark.parametrize("missing", ["DATABRICKS_CLIENT_ID", "ACTIONS_ID_TOKEN_REQUEST_URL"])
def test_github_oidc_without_its_variables_exits_2(
    root: Path,
    api: tuple[str, FakeWorkspace],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    missing: str,
) -> None:
    url, fake = api
    github_oidc(monkeypatch, url)
    monkeypatch.delenv(missing)
    assert run_cli(root, url) == 2
    assert f"{missing} not set" in capsys.readouterr().err
    assert fake.calls == []


# --- issue 24 (3): the job runs what the stack declares, as whom it declares -------------------------


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f.notebooks.discard(min(f.notebooks)), "is not in the workspace: nothing has uploaded"),
    (lambda f: f.job.update(run_as_user_name="someone@example.com"), "runs as someone@example.com, not"),
    (lambda f: f.job["settings"]["tasks"][1]["notebook_task"]["base_parameters"].update(k="50"),
     "task 02-eval gets parameters"),
    (lambda f: f.job["settings"]["tasks"][0]["notebook_task"].update(notebook_path="/Users/x/stale/01_prep"),
     "task 01-prep runs '/Users/x/stale/01_prep'"),
])  # fmt: skip
def test_a_job_that_would_not_run_as_declared_is_not_started(
    root: Path, api: tuple[str, FakeWorkspace], capsys: pytest.CaptureFixture[str], change: Any, message: str
) -> None:
    url, fake = api
    fake.states = [terminated("SUCCESS")]
    change(fake)
    assert run_cli(root, url) == 1
    err = capsys.readouterr().err
    assert message in err and "nothing started" in err
    assert "/api/2.1/jobs/run-now" not in paths(fake)


def test_preflight_lists_every_problem() -> None:
    expected = run_job.ExpectedJob("sp", {"a": ("/n/a", {"x": "1"})})
    deployed = {"run_as_user_name": "u@x.io", "settings": {"tasks": [{"task_key": "b"}]}}
    problems = run_job.preflight_problems(expected, deployed, lambda _path: False)
    assert problems[0] == "runs as u@x.io, not sp (databricks.run_as_service_principal)"
    assert problems[1] == "tasks ['b'], not ['a']"
    assert problems[2].startswith("notebook /n/a is not in the workspace")
    assert len(problems) == 3


# --- the run itself -----------------------------------------------------------------------------------


def test_a_failed_run_exits_1_with_its_state_message(
    root: Path, api: tuple[str, FakeWorkspace], capsys: pytest.CaptureFixture[str]
) -> None:
    url, fake = api
    fake.states = [RUNNING, terminated("FAILED", "Task train failed with message: ValueError: bad table")]
    assert run_cli(root, url) == 1
    err = capsys.readouterr().err
    assert "TERMINATED/FAILED" in err
    assert "Task train failed with message: ValueError: bad table" in err
    assert not any(c[1].endswith("/cancel") for c in fake.calls)


def test_an_internal_error_is_a_failure(root: Path, api: tuple[str, FakeWorkspace]) -> None:
    url, fake = api
    fake.states = [{"life_cycle_state": "INTERNAL_ERROR", "state_message": "cluster lost"}]
    assert run_cli(root, url) == 1


def test_a_run_that_outlives_the_timeout_is_cancelled_and_fails(
    root: Path, api: tuple[str, FakeWorkspace], capsys: pytest.CaptureFixture[str]
) -> None:
    url, fake = api
    fake.states = [RUNNING]
    assert run_cli(root, url, "--timeout", "0.3s") == 1
    err = capsys.readouterr().err
    assert "did not finish within" in err and "cancelled it" in err
    assert fake.calls[-1] == ("POST", "/api/2.1/jobs/runs/cancel", {"run_id": RUN_ID})
    # Bounded: about timeout / poll interval reads, not an endless loop.
    assert 2 <= fake.reads <= 30


def test_no_credentials_exit_2_naming_what_to_set(
    root: Path,
    api: tuple[str, FakeWorkspace],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, fake = api
    monkeypatch.delenv("DATABRICKS_TOKEN")
    assert run_cli(root, url) == 2
    err = capsys.readouterr().err
    assert "no Databricks credentials" in err and "DATABRICKS_TOKEN" in err and "github-oidc" in err
    assert fake.calls == []


def test_an_unknown_job_names_the_jobs_the_stack_outputs(
    root: Path, api: tuple[str, FakeWorkspace], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = api
    code = cli.main(["--root", str(root), "run-job", "--env", "dev", "--job", "nope", "--api-url", url])
    assert code == 2
    assert "batch_inference_job, model_training_job" in capsys.readouterr().err


def test_an_api_error_is_reported(
    root: Path,
    api: tuple[str, FakeWorkspace],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, _ = api
    monkeypatch.setenv("FAKE_OUTPUTS", json.dumps({"model_training_job_id": {"value": "99"}}))
    assert run_cli(root, url) == 1
    assert "HTTP 404 RESOURCE_DOES_NOT_EXIST: /api/2.1/jobs/get" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"), [("2h", 7200), ("30m", 1800), ("1h30m", 5400), ("90s", 90), ("5", 5)]
)
def test_durations(text: str, seconds: float) -> None:
    assert run_job.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "2d", "h", "-1m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(Exception, match="duration"):
        run_job.parse_duration(text)
