"""`hotline keys`: issue, list and revoke department API tokens and Open311 api_keys.

A key is printed once when issued and only its hash is kept; lists show the prefix to recognise it.
"""

from __future__ import annotations

import argparse
import sys

from hotline.db import make_engine, make_session_factory, transaction
from hotline.settings import Settings


def run(settings: Settings, args: argparse.Namespace) -> int:
    from tickets import api_tokens, open311_keys  # only this command needs them

    engine = make_engine(settings.effective_database_url)
    factory = make_session_factory(engine)
    try:
        with transaction(factory) as session:
            if args.keys_command == "issue":
                if args.kind == "department":
                    if not args.department:
                        print("hotline: keys issue department needs --department CODE", file=sys.stderr)
                        return 2
                    key = api_tokens.issue_token(session, args.department, args.name)
                else:
                    key = open311_keys.issue_api_key(session, args.name, args.contact or "")
                print(f"{args.kind} key for {args.name} (shown once, keep it safe):\n{key}")
            elif args.keys_command == "revoke":
                revoke = api_tokens.revoke_token if args.kind == "department" else open311_keys.revoke_api_key
                count = revoke(session, args.prefix)
                print(f"revoked {count} {args.kind} key(s) starting with {args.prefix}")
                return 0 if count else 1
            elif args.kind == "department":
                for token, code in api_tokens.list_tokens(session):
                    state = "revoked" if token.revoked_at else "active"
                    print(f"{token.prefix}  {code:<20} {token.name:<24} {state}")
            else:
                for client in open311_keys.list_clients(session):
                    state = "revoked" if client.revoked_at else "active"
                    print(f"{client.prefix}  {client.name:<24} {client.contact:<24} {state}")
    except (ValueError, LookupError) as exc:  # an unknown department, an empty name, ...
        print(f"hotline: keys {args.keys_command}: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = sub.add_parser("keys", help="API keys: department systems and Open311 clients")
    keys.set_defaults(func=run)
    actions = keys.add_subparsers(dest="keys_command", required=True)
    issue = actions.add_parser("issue", help="issue a key (printed once)")
    issue.add_argument("kind", choices=["department", "open311"])
    issue.add_argument("--name", required=True, help="the system or client the key is for")
    issue.add_argument("--department", help="department code (for department keys)")
    issue.add_argument("--contact", help="who to call about this client (Open311)")
    listing = actions.add_parser("list", help="list keys by prefix")
    listing.add_argument("kind", choices=["department", "open311"])
    revoke = actions.add_parser("revoke", help="revoke the keys starting with PREFIX")
    revoke.add_argument("kind", choices=["department", "open311"])
    revoke.add_argument("prefix")
