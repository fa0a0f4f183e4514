"""docs/configuration.md is generated from the models and the rules, and never stale."""

from __future__ import annotations

import pytest

from platform_config import rules
from platform_config.reference import DOCS_PATH, REGENERATE, render_markdown
from tests.conftest import ROOT


def test_committed_reference_is_current() -> None:
    committed = (ROOT / DOCS_PATH).read_text(encoding="utf-8")
    if committed != render_markdown():
        pytest.fail(f"{DOCS_PATH} is stale: regenerate it with `{REGENERATE}` and commit the result")


@pytest.mark.parametrize("requirement", rules.PRODUCTION, ids=[r.key for r in rules.PRODUCTION])
def test_every_production_requirement_is_on_its_key_row(requirement: rules.Requirement) -> None:
    rows = [line for line in render_markdown().splitlines() if line.startswith(f"| `{requirement.key}` |")]
    assert len(rows) == 1, f"no reference row for {requirement.key}: the key was renamed or removed"
    assert rows[0].endswith(f"| {requirement.shown} |")
