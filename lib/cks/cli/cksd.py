"""cksd.py: the HKP keyserver daemon."""

from __future__ import annotations

import logging
import signal
import socket
import sys
from typing import List

from ..config import ConfigError
from ..hkp.app import KeyServer, ServerSettings
from ..hkp.server import HKPServer, ServerLimits
from ..store import StoreError, open_store
from .common import UserError, base_parser, pipeline_limits, settings_from

log = logging.getLogger("cksd")


def build_parser():
    parser = base_parser("cksd.py", "CKS HKP keyserver daemon.")
    parser.add_argument("--bind", metavar="ADDR", help="address to listen on (default "
                        "127.0.0.1, or [server] bind in the config)")
    parser.add_argument("--port", type=int, metavar="N", help="HKP port (default 11371; "
                        "0 picks a free port)")
    return parser


def server_settings(settings, port: int) -> ServerSettings:
    return ServerSettings(
        hostname=settings.get("server", "hostname", socket.gethostname()),
        port=port,
        max_upload_bytes=settings.get_int("limits", "max_upload_bytes", 5 << 20),
        max_results=settings.get_int("limits", "max_results", 100),
        limits=pipeline_limits(settings))


def server_limits(settings) -> ServerLimits:
    defaults = ServerLimits()
    return ServerLimits(
        workers=settings.get_int("server", "max_connections", defaults.workers),
        queue=settings.get_int("server", "accept_queue", defaults.queue),
        idle_timeout=settings.get_float("server", "idle_timeout", defaults.idle_timeout),
        head_timeout=settings.get_float("server", "head_timeout", defaults.head_timeout),
        body_timeout=settings.get_float("server", "body_timeout", defaults.body_timeout))


def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
        bind = args.bind or settings.get("server", "bind", "127.0.0.1")
        port = args.port if args.port is not None else settings.get_int("server", "port", 11371)
        if not 0 <= port <= 65535:
            raise UserError("--port must be between 0 and 65535")
        access_log = settings.get("server", "access_log", "")
        store = open_store(settings.db_url, settings.get_int("database", "pool_size", 16))
        store.check()
        app = KeyServer(store, server_settings(settings, port))
        limits = server_limits(settings)
    except (ConfigError, StoreError) as exc:
        raise UserError(str(exc), 1) from None
    if access_log:
        handler = logging.FileHandler(access_log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        access = logging.getLogger("cks.access")
        access.addHandler(handler)
        access.propagate = False
    try:
        server = HKPServer(app, bind, port, limits)
    except OSError as exc:
        raise UserError("cannot listen on %s:%d: %s" % (bind, port, exc.strerror), 1) from None
    app.settings.port = server.server_address[1]
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.request_stop())
    host = server.server_address[0]
    print("cksd listening on http://%s:%d" % ("[%s]" % host if ":" in host else host,
                                              server.server_address[1]),
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.finish_stop()
        store.close()
    log.info("stopped")
    return 0
