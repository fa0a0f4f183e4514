"""Fakes for the CLI tests: a ``terraform`` and a ``cdktf`` that log their calls, a repository
copy with small synthesized-looking stack directories. No provider plugin, no network, no synthesis."""

from __future__ import annotations

import io
import json
import shutil
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from ops.runner import Console
from platform_config import naming
from platform_config.loader import BACKEND_DIR, TFVARS_DIR
from tests.conftest import ROOT
from tests.fixtures.real_values import supply_real_values

FAKE_TERRAFORM = r"""
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
stack = Path.cwd().name
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"tool": "terraform", "stack": stack, "args": args}) + "\n")
fail = os.environ.get("FAKE_FAIL", "")
cmd = args[0]

def ui(kind, message, **extra):
    print(json.dumps({"@level": extra.pop("level", "info"), "@message": message, "type": kind, **extra}))

if fail == f"{stack}:{cmd}":
    if cmd == "apply":
        print(f"Error: {os.environ.get('FAKE_FAIL_MESSAGE', 'creating S3 Bucket: AccessDenied')}", file=sys.stderr)
    elif cmd == "init":
        print("Initializing the backend...")
        print("\u2577\n\u2502 Error: Failed to get existing workspaces: S3 bucket does not exist.\n\u2575", file=sys.stderr)
    else:
        ui("diagnostic", "Error: Failed to get existing workspaces", level="error",
           diagnostic={"severity": "error", "summary": "Failed to get existing workspaces",
                       "detail": "S3 bucket does not exist."})
    sys.exit(1)
if cmd == "init":
    print("Initializing the backend...\nTerraform has been successfully initialized!")
elif cmd == "plan":
    out = next(a.split("=", 1)[1] for a in args if a.startswith("-out="))
    Path(out).write_text("fake plan")
    changes = json.loads(os.environ.get("FAKE_CHANGES", '{"add": 1, "change": 0, "import": 0, "remove": 0}'))
    ui("version", "Terraform 1.11.4")
    ui("planned_change", "terraform_data.x: Plan to create")
    ui("change_summary", "Plan: ...", changes={**changes, "operation": "plan"})
    if "-detailed-exitcode" in args and any(v for k, v in changes.items() if k != "operation"):
        sys.exit(2)
elif cmd == "show":
    print(f"  # plan text of {stack}")
elif args[:2] == ["state", "pull"]:
    # FAKE_STATES: {"<stack>": {"lineage": ..., "serial": ...}}; a stack without one has no state.
    state = json.loads(os.environ.get("FAKE_STATES", "{}")).get(stack)
    if state is not None:
        print(json.dumps({"version": 4, "resources": [], **state}))
elif cmd == "apply":
    print(f"{stack}: Apply complete! Resources: 1 added, 0 changed, 0 destroyed.")
"""

FAKE_CDKTF = r"""
import json, os, sys
args = sys.argv[1:]
tf_args = {k: v for k, v in os.environ.items() if k.startswith("TF_CLI_ARGS")}
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"tool": "cdktf", "args": args, "tf_cli_args": tf_args}) + "\n")
stack = args[1]
if os.environ.get("FAKE_FAIL") == stack:
    print(f"{stack}  Error: creating S3 Bucket: AccessDenied", file=sys.stderr)
    sys.exit(1)
print(f"{stack}  {args[0]} complete")
"""


def write_tool(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


def use_fake_terraform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the CLI at ``FAKE_TERRAFORM``; returns the log of its calls."""
    tool = write_tool(tmp_path / "bin", "terraform", FAKE_TERRAFORM)
    monkeypatch.setenv("TERRAFORM_BINARY_NAME", str(tool))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return tmp_path / "calls.jsonl"


def repo_copy(root: Path) -> Path:
    """A repository root holding the shipped environment files (what the CLI loads)."""
    for directory in (TFVARS_DIR, BACKEND_DIR):
        shutil.copytree(ROOT / directory, root / directory, dirs_exist_ok=True)
    return supply_real_values(root)  # plan/deploy refuse documentation placeholders


def fake_outdir(
    root: Path,
    env: str = "dev",
    kinds: Sequence[str] = naming.STACK_KINDS,
    dependencies: Mapping[str, list[str]] | None = None,
) -> Path:
    """A cdktf.out with a manifest and one tiny ``cdk.tf.json`` per stack."""
    outdir = root / "cdktf.out"
    stacks = {}
    for kind in kinds:
        name = naming.stack_id(kind, env)
        stack_dir = outdir / "stacks" / name
        stack_dir.mkdir(parents=True, exist_ok=True)
        (stack_dir / "cdk.tf.json").write_text(
            json.dumps({"resource": {"terraform_data": {kind: {"input": name}}}})
        )
        (stack_dir / "metadata.json").write_text("{}")
        stacks[name] = {
            "name": name,
            "constructPath": name,
            "annotations": [],
            "dependencies": list((dependencies or {}).get(name, [])),
            "synthesizedStackPath": f"stacks/{name}/cdk.tf.json",
            "workingDirectory": f"stacks/{name}",
            "stackMetadataPath": f"stacks/{name}/metadata.json",
        }
    (outdir / "manifest.json").write_text(json.dumps({"version": "0.21.0", "stacks": stacks}))
    return outdir


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


class Captured(Console):
    """A console whose output the test reads back."""

    def __init__(self) -> None:
        super().__init__(io.StringIO(), io.StringIO())

    @property
    def stdout(self) -> str:
        assert isinstance(self.out, io.StringIO)
        return self.out.getvalue()

    @property
    def stderr(self) -> str:
        assert isinstance(self.err, io.StringIO)
        return self.err.getvalue()


@dataclass
class FakeWorkspace:
    """A Databricks workspace on 127.0.0.1 that holds ``objects`` (API path -> answer) and nothing
    else: every other GET is 404 RESOURCE_DOES_NOT_EXIST; ``jobs`` answer jobs/list by name.
    ``calls`` logs each request's path and query."""

    url: str = ""
    objects: dict[str, Any] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@contextmanager
def fake_workspace() -> Iterator[FakeWorkspace]:
    fake = FakeWorkspace()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            fake.calls.append((url.path, query))
            doc: Any
            key = url.path + (f"?path={query['path']}" if "path" in query else "")
            if url.path == "/api/2.1/jobs/list":
                name = query.get("name", "").lower()  # exact, case-insensitive (SDK JobsAPI.list)
                status, doc = 200, {"jobs": [j for j in fake.jobs if j["settings"]["name"].lower() == name]}
            elif key in fake.objects:
                status, doc = fake.objects[key]
            else:
                status, doc = (
                    404,
                    {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"{key} doesn't exist."},
                )
            body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
