"""`mouthpiece admin …`: users, API keys and canary routing, straight on the service database.

    mouthpiece admin create-user NAME --plan basic|premium|admin [--data-dir DIR] [--json]
    mouthpiece admin list-users [--data-dir DIR] [--json]
    mouthpiece admin revoke-key KEY_OR_PREFIX [--data-dir DIR] [--json]
    mouthpiece admin set-canary REF PERCENT [--data-dir DIR] [--json]   # PERCENT 0 turns it off
    mouthpiece admin cleanup [--data-dir DIR] [--json]   # delete files of jobs past retention_days

The API key of a new user is printed once; only its hash is stored.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EXIT_OK = 0


def register(subparsers) -> None:
    admin = subparsers.add_parser("admin", help="service administration: users, API keys, canary")
    sub = admin.add_subparsers(dest="admin_command", required=True)

    p = sub.add_parser("create-user", help="create a user and print its API key (shown once)")
    p.add_argument("name", help="user name: letters, digits, '.', '_', '-'")
    p.add_argument("--plan", required=True, choices=("basic", "premium", "admin"))
    _common(p, create_user_command)

    p = sub.add_parser("list-users", help="list users, plans and API key prefixes")
    _common(p, list_users_command)

    p = sub.add_parser("revoke-key", help="revoke an API key (and every token issued through it)")
    p.add_argument("key", help="the API key, or its 12-character prefix (mp_<prefix>_…)")
    _common(p, revoke_key_command)

    p = sub.add_parser("set-canary", help="route a share of users to a canary checkpoint")
    p.add_argument("ref", help="installed checkpoint id@version (or alias)")
    p.add_argument("percent", type=int, help="0–100 (0 turns the canary off)")
    _common(p, set_canary_command)

    p = sub.add_parser("cleanup", help="delete stored files of jobs finished more than retention_days ago")
    _common(p, cleanup_command)


def _common(parser: argparse.ArgumentParser, func) -> None:
    parser.add_argument("--data-dir", help="data folder (default: $MOUTHPIECE_DATA_DIR or ./data)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=func)


def _settings(args: argparse.Namespace):
    from mouthpiece.service.config import settings_from_env

    return settings_from_env(data_dir=Path(args.data_dir) if args.data_dir else None)


def _session(settings):
    from mouthpiece.service.db import one_session

    return one_session(settings.db_url)


def create_user_command(args: argparse.Namespace) -> int:
    from mouthpiece.service.users import create_user

    with _session(_settings(args)) as session:
        user, key = create_user(session, args.name, args.plan)
        session.commit()
    if args.json:
        print(json.dumps({"user": user.name, "user_id": user.id, "plan": user.plan, "api_key": key}))
    else:
        print(f"created user {user.name} (plan {user.plan}, id {user.id})")
        print(f"API key (shown once, store it now): {key}")
    return EXIT_OK


def list_users_command(args: argparse.Namespace) -> int:
    from mouthpiece.service.users import list_users

    with _session(_settings(args)) as session:
        rows = [{"user": user.name, "user_id": user.id, "plan": user.plan,
                 "keys": [{"prefix": k.prefix, "revoked": k.revoked_at is not None} for k in keys]}
                for user, keys in list_users(session)]
    if args.json:
        print(json.dumps({"users": rows}))
    else:
        for row in rows:
            keys = ", ".join(k["prefix"] + (" (revoked)" if k["revoked"] else "") for k in row["keys"])
            print(f"{row['user']:<24} {row['plan']:<8} {row['user_id']}  keys: {keys or 'none'}")
    return EXIT_OK


def revoke_key_command(args: argparse.Namespace) -> int:
    from mouthpiece.service.users import revoke_key

    with _session(_settings(args)) as session:
        key = revoke_key(session, args.key)
        session.commit()
    if args.json:
        print(json.dumps({"prefix": key.prefix, "revoked_at": key.revoked_at}))
    else:
        print(f"revoked API key {key.prefix}: its tokens stop working now")
    return EXIT_OK


def set_canary_command(args: argparse.Namespace) -> int:
    from mouthpiece.checkpoints import Registry
    from mouthpiece.service import routing
    from mouthpiece.types import InputError

    if not 0 <= args.percent <= 100:
        raise InputError(f"percent must be within 0–100, got {args.percent}")
    settings = _settings(args)
    with _session(settings) as session:
        if args.percent == 0:
            routing.clear_canary(session)
            value = {"ref": None, "percent": 0}
        else:
            value = routing.set_canary(session, Registry(settings.registry_root, settings.trust_dir),
                                       args.ref, args.percent)
    if args.json:
        print(json.dumps(value))
    elif value["ref"] is None:
        print("canary off: every job runs on stable")
    else:
        print(f"canary {value['ref']} for {value['percent']:g} % of users")
    return EXIT_OK


def cleanup_command(args: argparse.Namespace) -> int:
    from mouthpiece.commands.worker import report_cleanup
    from mouthpiece.service.retention import cleanup

    settings = _settings(args)
    report_cleanup(cleanup(settings), settings.retention_days, args.json)
    return EXIT_OK
