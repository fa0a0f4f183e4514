"""Fakes for the pipeline tests: a ``terraform`` and a ``cdktf`` that log their calls, and small
synthesized-looking stack directories. No provider plugin, no network, no synthesis."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

from platform_config import naming
from scripts.stack_runner import Console

FAKE_TERRAFORM = r"""
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
stack = Path.cwd().name
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"tool": "terraform", "stack": stack, "args": args}) + "\n")
fail = os.environ.get("FAKE_FAIL", "")
cmd = args[0]
if fail == f"{stack}:{cmd}":
    if cmd == "init":
        print("Initializing the backend...")
    print("\u2577\n\u2502 Error: Failed to get existing workspaces: S3 bucket does not exist.\n\u2575", file=sys.stderr)
    sys.exit(1)
if cmd == "init":
    print("Initializing the backend...\nTerraform has been successfully initialized!")
elif cmd == "plan":
    out = next(a.split("=", 1)[1] for a in args if a.startswith("-out="))
    Path(out).write_text(os.environ.get("FAKE_PLAN_JSON", "{}"))
    print("Terraform will perform the following actions:\nPlan: 1 to add, 0 to change, 0 to destroy.")
elif cmd == "show" and "-json" in args:
    print(Path(args[-1]).read_text())
elif cmd == "show":
    print(f"  # plan text of {stack}")
"""

FAKE_CDKTF = r"""
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"tool": "cdktf", "args": args}) + "\n")
stack = args[1]
if os.environ.get("FAKE_FAIL") == stack:
    print(f"{stack}  Error: creating S3 Bucket: AccessDenied", file=sys.stderr)
    sys.exit(1)
print(f"{stack}  {args[0]} complete")
"""

PLAN_ONE_CREATE: dict[str, Any] = {
    "format_version": "1.2",
    "resource_changes": [
        {"address": "aws_s3_bucket.state", "mode": "managed", "change": {"actions": ["create"]}}
    ],
}


def write_tool(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


def fake_outdir(root: Path, env: str = "dev", kinds: tuple[str, ...] = naming.STACK_KINDS) -> Path:
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
            "dependencies": [],
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
