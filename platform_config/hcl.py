"""Parse a tfvars or partial backend config file into plain Python values.

Besides what python-hcl2 checks, two mistakes are refused with the place to look: an attribute
or object key written twice (python-hcl2, like Terraform inside an object, keeps the last value
silently), and an unbalanced bracket, reported where it opens rather than where the parser gave
up (often the end of the file, as `terraform fmt` does too).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hcl2
from lark import Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from platform_config.errors import Problem

_OPTIONS = hcl2.SerializationOptions(
    with_comments=False,
    strip_string_quotes=True,
    preserve_heredocs=False,
    explicit_blocks=True,
)


def parse(text: str, file: str) -> tuple[dict[str, Any], list[Problem]]:
    """Return the attributes of an HCL attribute-only file (tfvars / partial backend config).

    Blocks, expressions and interpolations are rejected: these files hold literal values only.
    """
    if not any(line.strip() and not line.lstrip().startswith(("#", "//")) for line in text.splitlines()):
        return {}, [Problem(file, "", "file is empty (or only comments)")]
    if bracket := unbalanced_bracket(text):
        return {}, [Problem(file, f"line {bracket.line}", f"HCL syntax error: {bracket.message}")]
    try:
        tree = hcl2.parses_to_tree(text)
        data = hcl2.serialize(hcl2.transform(tree), serialization_options=_OPTIONS)
    except UnexpectedInput as exc:
        return {}, [Problem(file, f"line {exc.line}", f"HCL syntax error: unexpected {_what(exc)}")]
    except (LarkError, ValueError) as exc:  # python-hcl2 raises ValueError on some malformed input
        return {}, [Problem(file, "", f"HCL syntax error: {str(exc).splitlines()[0]}")]
    if twice := [
        Problem(file, key, f"set twice (lines {first} and {second}); {_TWICE[key.isidentifier()]}")
        for key, first, second in duplicate_keys(tree)
    ]:
        return {}, twice
    problems: list[Problem] = []
    _check_literals(data, "", file, problems)
    return data, problems


def _check_literals(value: Any, key: str, file: str, problems: list[Problem]) -> None:
    if isinstance(value, dict):
        if value.get("__is_block__"):
            problems.append(Problem(file, key, "blocks are not allowed here; write `key = { ... }`"))
            return
        for k, v in value.items():
            _check_literals(v, f"{key}.{k}" if key else str(k), file, problems)
    elif isinstance(value, list):
        if key and all(isinstance(v, dict) and v.get("__is_block__") for v in value) and value:
            problems.append(Problem(file, key, "blocks are not allowed here; write `key = { ... }`"))
            return
        for i, v in enumerate(value):
            _check_literals(v, f"{key}[{i}]", file, problems)
    elif isinstance(value, str) and "${" in value:
        problems.append(
            Problem(file, key, "expressions and interpolations are not allowed; use a literal value")
        )


def _what(exc: UnexpectedInput) -> str:
    if isinstance(exc, UnexpectedToken):
        if exc.token.type == "$END":
            return "end of file"
        return f"{str(exc.token).strip()[:30]!r} at column {exc.column}"
    if isinstance(exc, UnexpectedCharacters):
        return f"character {exc.char!r} at column {exc.column}"
    return f"input at column {exc.column}"


# --- keys written twice ---------------------------------------------------------------------------

# Terraform 1.11 refuses a top-level attribute set twice ("Attribute redefined"), but keeps the
# last of two equal keys inside an object without a word: both are refused here.
_TWICE = {
    True: "Terraform refuses an attribute set twice: keep one",
    False: "only the last value would count, silently: keep one",
}


def _name(node: Tree[Any]) -> tuple[str, int] | None:
    """An attribute's or object element's key and the line of its first token."""
    tokens = list(node.scan_values(lambda v: isinstance(v, Token) and v.type != "DBLQUOTE"))
    if not tokens or tokens[0].line is None:
        return None
    return "".join(str(t) for t in tokens), tokens[0].line


def duplicate_keys(tree: Tree[Any]) -> list[tuple[str, int, int]]:
    """(dotted key, first line, second line) for every key set twice in the same body or object."""
    found: list[tuple[str, int, int]] = []

    def visit(node: Tree[Any], path: str) -> None:
        if node.data in {"body", "object"}:
            member = "attribute" if node.data == "body" else "object_elem"
            seen: dict[str, int] = {}
            for child in node.children:
                if not isinstance(child, Tree) or child.data != member:
                    continue
                key_node, value = child.children[0], child.children[-1]
                named = _name(key_node)
                if named is None:
                    continue
                key, line = named
                dotted = f"{path}.{key}" if path else key
                if key in seen:
                    found.append((dotted, seen[key], line))
                else:
                    seen[key] = line
                if isinstance(value, Tree):
                    visit(value, dotted)
            return
        index = 0
        for child in node.children:
            if not isinstance(child, Tree):
                continue
            if node.data == "tuple" and child.data == "expr_term":
                visit(child, f"{path}[{index}]")
                index += 1
            else:
                visit(child, path)

    visit(tree, "")
    return found


# --- brackets -------------------------------------------------------------------------------------

_PAIRS = {"{": "}", "[": "]", "(": ")"}
_CLOSERS = {v: k for k, v in _PAIRS.items()}


@dataclass(frozen=True)
class Bracket:
    line: int
    message: str


def _code_characters(text: str) -> Iterator[tuple[str, int, int]]:
    """Each character outside strings, comments and heredocs, with its line and column (1-based);
    ``"\\n"`` with the opening quote's column where a line ends inside a string (HCL's quoted strings
    end on their line)."""
    lines = text.split("\n")
    heredoc: str | None = None
    in_block_comment = False
    for number, line in enumerate(lines, 1):
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            continue
        i, in_string, opened = 0, False, 0
        while i < len(line):
            char = line[i]
            if in_block_comment:
                if line.startswith("*/", i):
                    in_block_comment, i = False, i + 2
                    continue
            elif in_string:
                if char == "\\":
                    i += 2
                    continue
                if char == '"':
                    in_string = False
            elif char == '"':
                in_string, opened = True, i + 1
            elif char == "#" or line.startswith("//", i):
                break
            elif line.startswith("/*", i):
                in_block_comment, i = True, i + 2
                continue
            elif line.startswith("<<", i):
                marker = line[i + 2 :].lstrip("-").strip()
                if marker.isidentifier():
                    heredoc = marker
                    break
                yield char, number, i + 1
            else:
                yield char, number, i + 1
            i += 1
        if in_string:
            yield "\n", number, opened


def unbalanced_bracket(text: str) -> Bracket | None:
    """The first bracket that closes nothing or is never closed, or string left open, where a reader
    would fix it."""
    stack: list[tuple[str, int, int]] = []
    for char, line, column in _code_characters(text):
        if char == "\n":
            return Bracket(line, f"the string opened at column {column} is not closed on its line")
        if char in _PAIRS:
            stack.append((char, line, column))
        elif char in _CLOSERS:
            if not stack:
                return Bracket(line, f"{char!r} at column {column} closes nothing")
            opener, opened_line, opened_column = stack.pop()
            if _PAIRS[opener] != char:
                return Bracket(
                    opened_line,
                    f"{opener!r} at column {opened_column} is closed by {char!r} on line {line}, "
                    f"column {column} (expected {_PAIRS[opener]!r})",
                )
    if stack:
        opener, line, column = stack[0]
        return Bracket(line, f"{opener!r} at column {column} is never closed")
    return None
