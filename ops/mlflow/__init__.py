"""``ops mlflow ...``: an environment's MLflow as its users meet it: who may sign in and what they
may do (ops/mlflow/people.py), and, for operators, the upgrade of its release and the way back
(ops/mlflow/upgrade.py, ops/mlflow/rollback.py).
See docs/stacks/mlflow.md, "Sign-in" and "Upgrading MLflow"."""

from __future__ import annotations

import argparse

from ops.mlflow import people
from ops.mlflow import rollback as rollback_module
from ops.mlflow import upgrade as upgrade_module
from ops.synth import add_env_option
from platform_config.loader import load


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "mlflow",
        help="users, permissions, the admin password and upgrades of an environment's MLflow",
        description=__doc__,
    )
    commands = parser.add_subparsers(dest="mlflow_command", required=True, metavar="<mlflow command>")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_env_option(sub)
        sub.add_argument(
            "--url",
            help="the tracking server (default: the environment's https://<host>; a local one for tests)",
        )
        return sub

    user = commands.add_parser("user", help="create a user or reset a password")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="<user command>")
    for name, help_text in (
        (
            "create",
            "create a user (a person: the first password is printed once; --service-account: kept in Secrets Manager)",
        ),
        (
            "reset-password",
            "give a user a new password (printed once, or kept in its secret with --service-account)",
        ),
    ):
        sub = user_commands.add_parser(name, help=help_text, description=help_text)
        add_env_option(sub)
        sub.add_argument("--url", help="the tracking server (default: the environment's https://<host>)")
        sub.add_argument("username")
        sub.add_argument(
            "--service-account",
            action="store_true",
            help="an automation account: its password goes into the secret <prefix>-user-<name>, never printed",
        )
        sub.set_defaults(func=run)
    for name, help_text in (
        ("grant", "give a user a permission on one experiment or registered model"),
        ("revoke", "take a user's own permission on one experiment or registered model away"),
    ):
        sub = command(name, help_text)
        sub.add_argument("--user", required=True, help="the user (as they sign in)")
        sub.add_argument("--experiment", help="the experiment's id or name")
        sub.add_argument("--model", help="the registered model's name")
        if name == "grant":
            sub.add_argument("--permission", required=True, choices=people.PERMISSIONS)
        sub.set_defaults(func=run)
    for name, module, help_text, verb in (
        (
            "upgrade",
            upgrade_module,
            "MLflow to the release the environment file names: preflight, snapshot, migrations once, refresh, check",
            "upgrading",
        ),
        (
            "rollback",
            rollback_module,
            "back to the release before an upgrade: the database replaced by its snapshot, refresh, check",
            "rolling back",
        ),
    ):
        sub = commands.add_parser(
            name,
            help=help_text,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_env_option(sub)
        sub.add_argument(
            "--url", help="the tracking server to check (default: the environment's https://<host>)"
        )
        sub.add_argument("--auto-approve", action="store_true", help="no confirmation prompt")
        sub.add_argument(
            "--force-production", action="store_true", help=f"allow {verb} a production environment"
        )
        sub.set_defaults(func=run)
    admin = commands.add_parser("admin", help="the administrator's password")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True, metavar="<admin command>")
    rotate = admin_commands.add_parser(
        "rotate", help="a new admin password, set through MLflow and kept in its secret"
    )
    add_env_option(rotate)
    rotate.add_argument("--url", help="the tracking server (default: the environment's https://<host>)")
    rotate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    [env] = load(args.root, [args.env], "--env")
    if args.mlflow_command == "rollback":
        return rollback_module.run(
            env,
            args.url,
            auto_approve=args.auto_approve,
            force_production=args.force_production,
            root=args.root,
        )
    if args.mlflow_command == "upgrade":
        return upgrade_module.run(
            env,
            args.url,
            auto_approve=args.auto_approve,
            force_production=args.force_production,
            root=args.root,
        )
    t = people.target(env, args.url)
    if args.mlflow_command == "user":
        if args.user_command == "create":
            print(people.create_user(t, args.username, args.service_account))
        else:
            print(people.reset_password(t, args.username, args.service_account))
    elif args.mlflow_command == "grant":
        print(people.grant(t, args.user, args.experiment, args.model, args.permission))
    elif args.mlflow_command == "revoke":
        print(people.revoke(t, args.user, args.experiment, args.model))
    else:
        print(people.rotate_admin(t))
    return 0
