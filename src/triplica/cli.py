"""Command line: `triplica serve [--host H] [--port P] [--data-dir D] [--sync MODE]`."""
from __future__ import annotations

import argparse
import logging
import sys


def _serve(args: argparse.Namespace) -> int:
    from triplica.api.app import TriplicaApp
    from triplica.api.http_server import run
    from triplica.api.sigv4 import load_credentials
    from triplica.engine.database import Database

    credentials = load_credentials(args.credentials) if args.credentials else None
    db = Database(args.data_dir, sync_mode=args.sync)
    run(TriplicaApp(db, credentials), args.host, args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triplica",
                                     description="A DynamoDB-compatible database.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a server with all roles in one process")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--data-dir", default="./triplica-data")
    serve.add_argument("--sync", choices=("always", "batch", "none"), default="batch",
                       help="WAL fsync policy: every record, once per group commit, or never")
    serve.add_argument("--credentials", default=None,
                       help="file of 'ACCESS_KEY_ID SECRET' lines; enables SigV4 verification")
    serve.add_argument("--log-level", default="WARNING")
    serve.set_defaults(run=_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
