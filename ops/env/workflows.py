"""A new environment's place in CI, written into the GitHub workflows (``ops env add``).

- ``pr.yml``: the environment joins the matrix of the ``plan`` job and the sections of the plan
  comment, so every pull request shows its plan;
- ``drift.yml``: it joins the daily drift check, compared with the branch its source environment
  deploys from;
- ``deploy-<env>.yml``: a new workflow that deploys it (plan, review, apply that plan) when a person
  starts it (``workflow_dispatch``), from that same branch only. Where it goes in the promotion
  chain (after ``tst``? before ``prd``?) is a decision for the team: docs/runbooks/add-environment.md.

The edits are textual and anchored on lines the workflows must have: a workflow that no longer has
them fails with the line that was looked for, before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ops.runner import UsageError

WORKFLOWS = Path(".github/workflows")
# `env: [dev, tst, prd]` in a job's matrix.
_MATRIX = re.compile(r"^(?P<indent>[ \t]+)env: \[(?P<envs>[a-z0-9, ]*)\]$", re.MULTILINE)
# The plan comment's sections: `const sections = ["dev", "tst", "prd"].map(`.
_SECTIONS = re.compile(r'(const sections = \[)(?P<envs>[a-z0-9", ]*)(\]\.map\()')
# drift.yml's `include:` entries, `- env: X` / `branch: Y`.
_INCLUDE = re.compile(
    r"^(?P<indent>[ \t]+)- env: (?P<env>[a-z0-9]+)\n(?P=indent)  branch: (?P<branch>[\w./-]+)$", re.MULTILINE
)


@dataclass(frozen=True)
class Edit:
    path: Path  # relative to the repository
    text: str  # the whole new text
    created: bool


def _listed(envs: str) -> list[str]:
    return [e.strip().strip('"') for e in envs.split(",") if e.strip()]


def _one(pattern: re.Pattern[str], text: str, path: Path, what: str) -> re.Match[str]:
    found = list(pattern.finditer(text))
    if len(found) != 1:
        raise UsageError(
            f"{path}: expected exactly one {what} (pattern {pattern.pattern!r}), found {len(found)}: "
            "add the environment to CI by hand (docs/runbooks/add-environment.md)"
        )
    return found[0]


def _with_env(pattern: re.Pattern[str], text: str, path: Path, what: str, new: str, *, quoted: bool) -> str:
    match = _one(pattern, text, path, what)
    envs = _listed(match.group("envs"))
    if new in envs:
        return text
    item = f'"{new}"' if quoted else new
    start, end = match.span("envs")
    return text[:start] + match.group("envs") + f", {item}" + text[end:]


def pull_request(text: str, new: str, path: Path) -> str:
    text = _with_env(_MATRIX, text, path, "matrix `env: [...]`", new, quoted=False)
    return _with_env(_SECTIONS, text, path, "`const sections = [...]`", new, quoted=True)


def branch_of(drift_text: str, env: str, path: Path) -> str:
    """The branch ``env`` deploys from, as drift.yml's matrix says."""
    branches = {m.group("env"): m.group("branch") for m in _INCLUDE.finditer(drift_text)}
    if env not in branches:
        raise UsageError(f"{path}: no `include: - env: {env}` entry with its branch")
    return branches[env]


def drift(text: str, new: str, branch: str, path: Path) -> str:
    text = _with_env(_MATRIX, text, path, "matrix `env: [...]`", new, quoted=False)
    entries = list(_INCLUDE.finditer(text))
    if any(m.group("env") == new for m in entries):
        return text
    last = entries[-1]
    indent = last.group("indent")
    return text[: last.end()] + f"\n{indent}- env: {new}\n{indent}  branch: {branch}" + text[last.end() :]


def deploy_workflow(new: str, source: str, branch: str) -> str:
    return f"""# Deploy {new} (added by `python -m ops env add {new} --from {source}`): plan every stack, then apply
# exactly that plan in the GitHub Environment {new}, whose settings decide who may approve. Started by
# hand, from {branch} only (the branch {source} deploys from), until the team puts {new} into the
# promotion chain of deploy-tst.yml / deploy-prd.yml (docs/runbooks/add-environment.md).
name: deploy {new}

on:
  workflow_dispatch:

permissions:
  contents: read

jobs:
  checks:
    if: github.ref == 'refs/heads/{branch}'
    uses: ./.github/workflows/checks.yml

  deploy:
    needs: checks
    uses: ./.github/workflows/deploy.yml
    with:
      env: {new}
    permissions:
      contents: read
      id-token: write # OIDC tokens for the AWS roles and the Databricks service principals
"""


def edits(root: Path, new: str, source: str) -> list[Edit]:
    """Every workflow change for ``new`` (copied from ``source``); nothing is written here."""
    pr_path, drift_path = WORKFLOWS / "pr.yml", WORKFLOWS / "drift.yml"
    deploy_path = WORKFLOWS / f"deploy-{new}.yml"
    for path in (pr_path, drift_path):
        if not (root / path).is_file():
            raise UsageError(f"{path}: missing; the CI entries of {new} cannot be written")
    drift_text = (root / drift_path).read_text(encoding="utf-8")
    branch = branch_of(drift_text, source, drift_path)
    out = [
        Edit(pr_path, pull_request((root / pr_path).read_text(encoding="utf-8"), new, pr_path), False),
        Edit(drift_path, drift(drift_text, new, branch, drift_path), False),
    ]
    if not (root / deploy_path).exists():
        out.append(Edit(deploy_path, deploy_workflow(new, source, branch), True))
    return out
