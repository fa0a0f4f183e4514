"""Boot rehearsal of the MLflow instances: the boot script exactly as synthesized into
the launch template, run on this machine against MariaDB (TLS), moto, Redis (TLS) and nginx on
127.0.0.1, then used as a user would (Python client, headless Chromium, plain HTTP).

Modules: ``substitutions`` (the one table of OS-specific changes), ``target`` (what is read from
the synthesized stack), ``servers``, ``instance`` and ``procs`` (supervised child processes),
``harness`` (the steps), ``memory`` (MLflow's memory against the load rule's estimate),
``journey`` (the client, run in the rehearsal venv), ``browser``, ``install``.
Run: ``python -m rehearsal --help``.
"""
