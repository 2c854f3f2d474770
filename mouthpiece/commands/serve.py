"""`mouthpiece serve`: the HTTP API and web page (uvicorn), plus worker process(es) in embedded mode.

Settings come from MOUTHPIECE_* environment variables (service/config.py) and the flags below.
With `--workers 0` no worker is started (scaled mode: run `mouthpiece worker` processes instead).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

EXIT_OK = 0
GRACEFUL_SHUTDOWN_S = 10  # open event streams are closed after this on shutdown


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="run the HTTP API, web page and worker process(es)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--data-dir", help="data folder (default: $MOUTHPIECE_DATA_DIR or ./data)")
    p.add_argument("--workers", type=int, help="worker processes to start (default: $MOUTHPIECE_WORKERS "
                                               "or 1; 0 = none, run `mouthpiece worker` separately)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mouthpiece.service.config import settings_from_env
    from mouthpiece.types import InputError

    if not 0 < args.port < 65536:
        raise InputError(f"--port must be within 1–65535, got {args.port}")
    if args.workers is not None and args.workers < 0:
        raise InputError(f"--workers must be ≥ 0, got {args.workers}")
    settings = settings_from_env(data_dir=Path(args.data_dir) if args.data_dir else None,
                                 workers=args.workers)
    import uvicorn

    from mouthpiece.service.app import create_app
    from mouthpiece.service.logs import configure_logging

    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    app = create_app(settings, start_workers=True)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    return EXIT_OK
