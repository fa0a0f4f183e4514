"""Boot rehearsal of the MLflow instances: the boot script exactly as synthesized into
the launch template, run on this machine against MariaDB (TLS, RDS IAM tokens), moto, Redis (TLS) and nginx on
127.0.0.1, then used as a user would (Python client, headless Chromium, plain HTTP).

Modules: ``substitutions`` (the one table of OS-specific changes, and the database-user Lambda's
one substitution), ``target`` (what is read from the synthesized stack), ``servers``, ``instance``
and ``procs`` (supervised child processes), ``iam_token`` (the RDS IAM token verifier MariaDB's PAM
service runs), ``grants`` (the privileges MLflow's statements need), ``harness`` (the steps),
``memory`` (MLflow's memory against the load rule's estimate), ``load`` (the tracking API under
concurrent clients: throughput, latency, server CPU per request), ``journey`` (the client, run in the
rehearsal venv), ``browser``, ``install``. Run: ``python -m rehearsal --help``;
docs/stacks/mlflow.md describes the steps.
"""
