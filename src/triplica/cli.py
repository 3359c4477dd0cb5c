"""Command line: `triplica serve [--host H] [--port P] [--data-dir D] [--sync MODE] [--replicas N]
[--nodes N]`, `triplica node --config FILE`, `triplica node drain|undrain --node N`,
`triplica cluster up|down|start-node --data-dir DIR ...`, `triplica migrate --data-dir D`."""
from __future__ import annotations

import argparse
import logging
import sys


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    import uvloop

    from triplica.api.http_server import serve_until_stopped
    from triplica.api.sigv4 import load_credentials
    from triplica.engine.node_config import SplitLimits
    from triplica.hosting.serve import DataDirectoryError, Deployment, ServeSettings

    credentials = load_credentials(args.credentials) if args.credentials else None
    nodes = args.nodes if args.nodes is not None else (1 if args.replicas == 1 else 3)
    try:
        settings = ServeSettings(
            data_dir=args.data_dir, nodes=nodes, replicas=args.replicas, sync=args.sync,
            splits=SplitLimits(size_bytes=args.split_size_bytes or SplitLimits().size_bytes,
                               for_traffic=args.split_for_traffic),
            replace_after_s=args.replace_after)
    except ValueError as error:
        print(f"triplica serve: {error}", file=sys.stderr)
        return 2

    async def main() -> int:
        deployment = Deployment(settings, credentials)
        try:
            app = await deployment.start()
        except DataDirectoryError as error:
            print(f"triplica serve: {error}", file=sys.stderr, flush=True)
            await deployment.close()
            return 1
        waiting = await deployment.wait_ready()
        if waiting:
            logging.getLogger("triplica").warning("groups with no leader yet: %s",
                                                  " ".join(waiting[:20]))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await serve_until_stopped(app, args.host, args.port, stop)
        finally:
            await deployment.close()
        return 0

    code = uvloop.run(main())
    sys.stdout.flush()
    return code


def _migrate(args: argparse.Namespace) -> int:
    from triplica.hosting.migrate import run_migrate

    code = run_migrate(args.data_dir, replicas=args.replicas,
                       out=lambda line: print(line, flush=True))
    sys.stdout.flush()
    return code


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
    serve.add_argument("--replicas", type=int, choices=(1, 3), default=3,
                       help="copies of each partition: 3 (default) = a Paxos group in three AZs "
                            "in this process, 1 = a group of one")
    serve.add_argument("--nodes", type=int, default=None,
                       help="storage nodes in this process (default 3, or 1 with --replicas 1)")
    serve.add_argument("--replace-after", type=float, default=30.0, metavar="SECONDS",
                       help="replace a replica that has been down this long: a log replica "
                            "first, then a full copy")
    serve.add_argument("--split-size-bytes", type=int, default=10 * 1000 ** 3, metavar="BYTES",
                       help="split a partition holding more than this (default about 10 GB, "
                            "DynamoDB's per-partition size)")
    serve.add_argument("--split-for-traffic", action="store_true",
                       help="also split partitions that keep running hot (off: in one process "
                            "more partitions cost throughput; see bench/splits.py)")
    serve.add_argument("--credentials", default=None,
                       help="file of 'ACCESS_KEY_ID SECRET' lines; enables SigV4 verification")
    serve.add_argument("--log-level", default="WARNING")
    serve.set_defaults(run=_serve)
    migrate = commands.add_parser(
        "migrate", help="convert a data directory of the earlier release (one catalog.json "
                        "for the server) to the current layout, in place")
    migrate.add_argument("--data-dir", required=True)
    migrate.add_argument("--replicas", type=int, choices=(1, 3), default=None,
                         help="copies of each partition in the new layout (default: as the "
                              "old directory had them)")
    migrate.add_argument("--log-level", default="WARNING")
    migrate.set_defaults(run=_migrate)
    _add_cluster_commands(commands)
    return parser


# ------------------------------------------------------------ node and cluster

def _node(args: argparse.Namespace) -> int:
    if args.action in ("drain", "undrain"):
        return _drain(args)
    if args.config is None:
        print("triplica node: --config is required to run a node", file=sys.stderr)
        return 2
    from triplica.engine.node_config import load_node_config
    from triplica.hosting.node_process import run_node

    run_node(load_node_config(args.config))
    sys.stdout.flush()
    return 0


def _drain(args: argparse.Namespace) -> int:
    from triplica.cluster.drain import drain

    if args.node is None:
        print("triplica node drain: --node is required", file=sys.stderr)
        return 2
    left = drain(args.endpoint, args.node, args.wait, undo=args.action == "undrain")
    if args.action == "undrain":
        print(f"node {args.node}: no longer draining", flush=True)
        return 0
    print(f"node {args.node}: {left} replicas left", flush=True)
    return 0 if left == 0 else 1


def _cluster(args: argparse.Namespace) -> int:
    from triplica.cluster import local
    from triplica.engine.node_config import SplitLimits

    try:
        if args.action == "up":
            splits = SplitLimits(size_bytes=args.split_size_bytes,
                                 read_units=args.split_read_units,
                                 write_units=args.split_write_units,
                                 window_s=args.split_window, for_traffic=not args.no_split_for_traffic)
            endpoints = local.cluster_up(args.data_dir, nodes=args.nodes, azs=args.azs,
                                         base_port=args.base_port, sync=args.sync,
                                         routers=args.routers, memds=args.memds, splits=splits,
                                         replace_after_s=args.replace_after)
            print(" ".join(endpoints), flush=True)
        elif args.action == "down":
            stopped = local.cluster_down(args.data_dir)
            print(f"stopped {len(stopped)} processes", flush=True)
        else:
            print(local.start_node(args.data_dir, args.node), flush=True)
    except local.ClusterError as error:
        print(f"triplica cluster {args.action}: {error}", file=sys.stderr)
        return 1
    return 0


def _add_cluster_commands(commands: "argparse._SubParsersAction") -> None:
    node = commands.add_parser("node", help="run one storage node (see engine/node_config.py), "
                                            "or drain one: triplica node drain --node N")
    node.add_argument("action", nargs="?", choices=("run", "drain", "undrain"), default="run",
                      help="drain: move every replica off --node (metadata/replica_mover.py)")
    node.add_argument("--config", default=None, help="node config file (.json or .toml)")
    node.add_argument("--node", type=int, default=None, help="drain: the node's id")
    node.add_argument("--endpoint", default="http://127.0.0.1:8000", help="drain: a router")
    node.add_argument("--wait", type=float, default=600.0, metavar="SECONDS",
                      help="drain: how long to wait for the replicas to move")
    node.add_argument("--log-level", default="WARNING")
    node.set_defaults(run=_node)
    cluster = commands.add_parser("cluster", help="a local multi-process cluster on 127.0.0.1")
    actions = cluster.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="start N nodes and the routers, print their endpoints")
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--azs", type=int, default=3)
    up.add_argument("--routers", type=int, default=1,
                    help="stateless routers side by side (router r >= 2 listens on base+200+r)")
    up.add_argument("--memds", type=int, default=2,
                    help="MemDS servers holding the partition map (server m on base+300+m)")
    up.add_argument("--base-port", type=int, default=8000,
                    help="router port; node i uses base+i (HTTP) and base+100+i (peers)")
    up.add_argument("--sync", choices=("always", "batch", "none"), default="batch")
    up.add_argument("--split-size-bytes", type=int, default=10 * 1000 ** 3, metavar="BYTES",
                    help="a partition holding more splits in two (default ~10 GB)")
    up.add_argument("--split-read-units", type=float, default=3000.0, metavar="RCU",
                    help="per-partition read units/s; above 80%% for 3 windows splits")
    up.add_argument("--split-write-units", type=float, default=1000.0, metavar="WCU",
                    help="per-partition write units/s; above 80%% for 3 windows splits")
    up.add_argument("--split-window", type=float, default=5.0, metavar="SECONDS",
                    help="consumption window length")
    up.add_argument("--no-split-for-traffic", action="store_true",
                    help="split for size only")
    up.add_argument("--replace-after", type=float, default=60.0, metavar="SECONDS",
                    help="a node silent this long has its replicas moved to other nodes")
    down = actions.add_parser("down", help="stop every process of the cluster (SIGTERM, SIGKILL)")
    start = actions.add_parser("start-node", help="(re)start one stopped node from its config")
    start.add_argument("--node", type=int, required=True)
    for action in (up, down, start):
        action.add_argument("--data-dir", required=True)
        action.add_argument("--log-level", default="WARNING")
    cluster.set_defaults(run=_cluster)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
