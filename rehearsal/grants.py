"""The privileges MLflow's statements need, read from MariaDB's general log: the proof that the
db-users Lambda (constructs_lib/db_users_lambda/handler.py) grants what MLflow uses and no more.

Each statement needs what MySQL's manual says its kind needs; REFERENCES (a FOREIGN KEY clause)
is checked by MySQL 8.0 but not by MariaDB, so it is read from the statement's text, like the rest.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

# One general-log entry: [date time]<TAB>session id, command<TAB>argument; a statement's further
# lines follow without that prefix.
ENTRY = re.compile(r"^(?:\d{6}\s+\d{1,2}:\d{2}:\d{2})?\t+ *(\d+) ([A-Za-z]+(?: [A-Za-z]+)?)\t(.*)$")
# A statement's kind (its opening words) -> what it needs on its tables (MySQL manual, "Privileges
# Provided by MySQL"); ``needed`` adds what the rest of the statement implies.
RENAME = frozenset({"ALTER", "DROP", "CREATE", "INSERT"})  # on the old and the new name
KINDS = tuple(
    (re.compile(pattern), frozenset(privileges))
    for pattern, privileges in (
        (r"(SET|SHOW|COMMIT|ROLLBACK|BEGIN|START TRANSACTION|SAVEPOINT|RELEASE SAVEPOINT|USE|DESCRIBE"
         r"|EXPLAIN)\b", ()),
        (r"SELECT\b", ()),  # SELECT itself when it reads a table (below)
        (r"INSERT\b", ("INSERT",)),
        (r"UPDATE\b", ("UPDATE",)),
        (r"DELETE\b", ("DELETE",)),
        (r"CREATE TABLE\b", ("CREATE",)),
        (r"(CREATE (UNIQUE )?INDEX|DROP INDEX)\b", ("INDEX",)),
        (r"(CREATE|DROP) TRIGGER\b", ("TRIGGER",)),
        (r"ALTER TABLE \S+ RENAME (TO |AS )?(?!COLUMN\b|INDEX\b|KEY\b)", RENAME),
        (r"RENAME TABLE\b", RENAME),
        (r"ALTER TABLE\b", ("ALTER",)),
        (r"(DROP TABLE|TRUNCATE)\b", ("DROP",)),
    )
)  # fmt: skip
# Reading a table; not SELECT GET_LOCK(...), SELECT DATABASE() or the catalogue reflection reads.
READS_TABLE = re.compile(r"\bFROM\s+(?!INFORMATION_SCHEMA\.|DUAL\b)")
WHERE = re.compile(r"\bWHERE\b")
FOREIGN_KEY = re.compile(r"\bFOREIGN KEY\b|\sREFERENCES\s")


def statements(log: str, user: str, exclude: Collection[str] = ()) -> list[str]:
    """The statements ``user``'s sessions sent (but the ``exclude`` session ids), in order, each on
    one line."""
    owner: dict[str, str] = {}
    found: list[list[str]] = []
    current: list[str] | None = None
    for line in log.splitlines():
        entry = ENTRY.match(line)
        if entry is None:
            if current is not None:
                current.append(line)
            continue
        session, command, argument = entry.groups()
        current = None
        if command == "Connect":
            owner[session] = argument.split("@", 1)[0]
        elif command in ("Query", "Execute") and owner.get(session) == user and session not in exclude:
            current = [argument]
            found.append(current)
    return [" ".join(" ".join(parts).split()) for parts in found]


def needed(statement: str) -> frozenset[str] | None:
    """The privileges ``statement`` needs on its tables; None for a kind this table does not know."""
    s = statement.upper()
    kind = next((privileges for pattern, privileges in KINDS if pattern.match(s)), None)
    if kind is None:
        return None
    implied = set()
    # Reading rows: a SELECT or INSERT ... SELECT from a table, an UPDATE or DELETE with a WHERE.
    if (s.startswith(("SELECT", "INSERT")) and READS_TABLE.search(s)) or (
        s.startswith(("UPDATE", "DELETE")) and WHERE.search(s)
    ):
        implied.add("SELECT")
    if s.startswith(("CREATE TABLE", "ALTER TABLE")) and FOREIGN_KEY.search(s):
        implied.add("REFERENCES")
    return kind | implied


@dataclass(frozen=True)
class Use:
    counts: Counter[str]  # privilege -> statements that needed it
    examples: dict[str, str]  # privilege -> the first such statement
    unknown: list[str]  # statements of a kind `needed` does not know

    @classmethod
    def of(cls, sent: list[str]) -> Use:
        counts: Counter[str] = Counter()
        examples: dict[str, str] = {}
        unknown = []
        for statement in sent:
            privileges = needed(statement)
            if privileges is None:
                unknown.append(statement)
                continue
            for privilege in privileges:
                counts[privilege] += 1
                examples.setdefault(privilege, statement)
        return cls(counts, examples, unknown)
