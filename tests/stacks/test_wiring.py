"""Stacks only wire constructs together: no function in stacks/ is longer than a page."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

MAX_LINES = 80


def function_lengths() -> dict[str, int]:
    lengths = {}
    for path in sorted((ROOT / "stacks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                lengths[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = (
                    node.end_lineno - node.lineno + 1
                )
    return lengths


def test_no_function_in_stacks_is_longer_than_80_lines() -> None:
    lengths = function_lengths()
    assert lengths, "no function found in stacks/"
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert too_long == {}, f"split these into constructs or helpers (max {MAX_LINES} lines): {too_long}"
