"""The runbooks that are commands, run exactly as written on a scratch copy of the repository.

`docs/runbooks/add-environment.md`: its first shell block (`make env-add NAME=qa FROM=dev`, then
`make check`), with `qa` replaced by a generated name (a test never borrows a name a user might
give an environment) and `dev` by the first shipped environment. The whole check of the copy must
pass: the new environment needs nothing else. Minutes long: `make runbooks` (pytest -m runbook),
run by CI; left out of `make test`, which the copy's own check is.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, scratch_env_name, shipped_env_names

RUNBOOK = ROOT / "docs" / "runbooks" / "add-environment.md"
# What each copy links instead of installing again (ignored by git, so not in the copy).
# Installed trees the scratch copy shares with this checkout (the copy keeps the files' times, so
# make sees them as installed and never reinstalls through a link: npm ci would empty the target).
LINKED = (".venv", ".venv-tools", "node_modules", "tools/iam-simulate/node_modules")
TIMEOUT = 30 * 60


def first_shell_block(text: str) -> list[str]:
    match = re.search(r"```bash\n(.*?)```", text, re.DOTALL)
    assert match, "the runbook has no ```bash block"
    return [
        line.split("#", 1)[0].strip() for line in match.group(1).splitlines() if line.split("#", 1)[0].strip()
    ]


def scratch_copy(dest: Path) -> Path:
    """The repository as git sees it (tracked files and new ones not ignored), venvs linked."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    for name in LINKED:
        if (ROOT / name).exists():
            (dest / name).symlink_to((ROOT / name).resolve(), target_is_directory=True)
    return dest


@pytest.mark.runbook
def test_adding_an_environment_as_the_runbook_says_ends_green(tmp_path: Path) -> None:
    new, source = scratch_env_name(), shipped_env_names()[0]
    lines = [
        re.sub(r"\bFROM=dev\b", f"FROM={source}", re.sub(r"\bqa\b", new, line))
        for line in first_shell_block(RUNBOOK.read_text())
    ]
    assert lines == [f"make env-add NAME={new} FROM={source}", "make check"], lines
    copy = scratch_copy(tmp_path / "repo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MAKE"))}
    env.pop("MAKEFLAGS", None)
    for line in lines:
        done = subprocess.run(
            ["bash", "-c", line],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, (
            f"{line}: exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
        )
    assert (copy / "env_specific_vars" / f"{new}.tfvars").is_file()
    assert (copy / ".github" / "workflows" / f"deploy-{new}.yml").is_file()
