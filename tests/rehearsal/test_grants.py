"""The privilege each statement kind needs, and the statements read back from MariaDB's general
log: the rehearsal's proof that MLflow's grants are what it uses."""

from __future__ import annotations

import pytest

from rehearsal import grants

LOG = """/usr/sbin/mariadbd, Version: 10.11.19-MariaDB-0+deb12u1-log (Debian 12). started with:
Tcp port: 3306  Unix socket: /tmp/mysqld.sock
Time\t\t    Id Command\tArgument
261201 11:23:42\t      5 Connect\tmlflow@127.0.0.1 on mlflow using TLSv1.3
\t\t      5 Query\tSELECT GET_LOCK('mlflow-schema-init', 600)
\t\t      6 Connect\tmlflow_admin@127.0.0.1 on  using TLSv1.3
\t\t      6 Query\tCREATE USER IF NOT EXISTS 'mlflow'@'%' IDENTIFIED VIA pam
\t\t      5 Query\tCREATE TABLE experiments (
\texperiment_id INTEGER NOT NULL AUTO_INCREMENT,
\tPRIMARY KEY (experiment_id)
)
261201 11:23:43\t      7 Connect\tmlflow@127.0.0.1 on mlflow using TLSv1.3
\t\t      7 Query\tCREATE USER 'intruder'@'%'
\t\t      8 Connect\tAccess denied for user 'mlflow'@'127.0.0.1' (using password: YES)
\t\t      5 Quit\t
"""


def test_statements_of_one_user_joined_and_without_the_excluded_sessions() -> None:
    assert grants.statements(LOG, "mlflow", exclude={"7"}) == [
        "SELECT GET_LOCK('mlflow-schema-init', 600)",
        "CREATE TABLE experiments ( experiment_id INTEGER NOT NULL AUTO_INCREMENT, PRIMARY KEY (experiment_id) )",
    ]
    assert grants.statements(LOG, "mlflow_admin") == [
        "CREATE USER IF NOT EXISTS 'mlflow'@'%' IDENTIFIED VIA pam"
    ]


@pytest.mark.parametrize(
    ("statement", "privileges"),
    [
        ("SELECT GET_LOCK('mlflow-schema-init', 600)", set()),
        ("SELECT table_name FROM information_schema.tables WHERE table_schema = 'mlflow'", set()),
        ("SHOW FULL TABLES FROM `mlflow`", set()),
        ("SELECT runs.run_uuid FROM runs WHERE runs.experiment_id = 1", {"SELECT"}),
        ("INSERT INTO params (key, value) VALUES ('a', '1')", {"INSERT"}),
        ("INSERT INTO latest_metrics SELECT * FROM metrics", {"INSERT", "SELECT"}),
        ("UPDATE alembic_version SET version_num='x' WHERE alembic_version.version_num = 'y'", {"UPDATE", "SELECT"}),
        ("DELETE FROM tags WHERE tags.key = 'scratch'", {"DELETE", "SELECT"}),
        ("CREATE TABLE params (run_uuid VARCHAR(32), FOREIGN KEY(run_uuid) REFERENCES runs (run_uuid))",
         {"CREATE", "REFERENCES"}),
        ("CREATE INDEX index_params_run_uuid ON params (run_uuid)", {"INDEX"}),
        ("DROP INDEX index_params_run_uuid ON params", {"INDEX"}),
        ("CREATE TRIGGER prevent_secrets_aad_mutation BEFORE UPDATE ON secrets FOR EACH ROW BEGIN END", {"TRIGGER"}),
        ("ALTER TABLE runs ADD COLUMN lifecycle_stage VARCHAR(20)", {"ALTER"}),
        ("ALTER TABLE params ADD CONSTRAINT fk FOREIGN KEY(run_uuid) REFERENCES runs (run_uuid)", {"ALTER", "REFERENCES"}),
        ("ALTER TABLE runs RENAME COLUMN a TO b", {"ALTER"}),
        ("ALTER TABLE old_runs RENAME TO runs", {"ALTER", "DROP", "CREATE", "INSERT"}),
        ("DROP TABLE webhooks", {"DROP"}),
    ],
)  # fmt: skip
def test_privileges_each_statement_kind_needs(statement: str, privileges: set[str]) -> None:
    assert grants.needed(statement) == frozenset(privileges)


def test_unknown_kinds_are_reported_not_guessed() -> None:
    use = grants.Use.of(["CREATE USER 'x'@'%'", "SELECT 1", "INSERT INTO t VALUES (1)"])
    assert use.unknown == ["CREATE USER 'x'@'%'"]
    assert use.counts == {"INSERT": 1}
    assert use.examples == {"INSERT": "INSERT INTO t VALUES (1)"}
