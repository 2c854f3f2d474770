"""`mouthpiece serve`: the HTTP API and web page (uvicorn), plus worker process(es) in embedded mode.

Settings come from MOUTHPIECE_* environment variables (service/config.py) and the flags below.
With `--workers 0` no worker is started (scaled mode: run `mouthpiece worker` processes instead).
With `--api-workers N` (N > 1) uvicorn runs N API processes on the one port; each builds its app
from the environment (`app.app_from_env`), so the flags are passed down as MOUTHPIECE_*
variables, and this process keeps the job workers.
With `--metrics-port P` this process also serves /metrics on 127.0.0.1:P without auth (for a
scraper on the same machine); on the API port /metrics needs the scrape token
(MOUTHPIECE_METRICS_TOKEN) or an admin's access token.
"""

from __future__ import annotations

import argparse
import logging
import os
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
    p.add_argument("--api-workers", type=int,
                   help="API processes sharing the port (default: $MOUTHPIECE_API_WORKERS or 1); with more "
                        "than one, rate limits are shared through Redis or a file in the data folder")
    p.add_argument("--metrics-port", type=int,
                   help="also serve /metrics without auth on 127.0.0.1:PORT (default: "
                        "$MOUTHPIECE_METRICS_PORT or none)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mouthpiece.service.config import ENV_PREFIX, settings_from_env
    from mouthpiece.types import InputError

    if not 0 < args.port < 65536:
        raise InputError(f"--port must be within 1–65535, got {args.port}")
    if args.workers is not None and args.workers < 0:
        raise InputError(f"--workers must be ≥ 0, got {args.workers}")
    if args.api_workers is not None and not 1 <= args.api_workers <= 64:
        raise InputError(f"--api-workers must be within 1–64, got {args.api_workers}")
    level = "debug" if args.verbose else None
    settings = settings_from_env(data_dir=Path(args.data_dir) if args.data_dir else None,
                                 workers=args.workers, api_workers=args.api_workers, log_level=level,
                                 metrics_port=args.metrics_port)
    if settings.metrics_port is not None and not (0 < settings.metrics_port < 65536
                                                  and settings.metrics_port != args.port):
        raise InputError(f"--metrics-port must be within 1–65535 and differ from --port, "
                         f"got {settings.metrics_port}")
    import uvicorn

    from mouthpiece.service.logs import configure_logging

    configure_logging(logging.getLevelName(settings.log_level.upper()))
    options = dict(host=args.host, port=args.port, log_config=None, access_log=False,
                   timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    if settings.api_workers == 1:
        from mouthpiece.service.app import create_app

        app = create_app(settings, start_workers=True)
        if settings.metrics_port is not None:
            _serve_metrics(app.state.services.metrics.scraped, settings.metrics_port)
        uvicorn.run(app, **options)
        return EXIT_OK

    from mouthpiece.service.app import prepare_shared_state
    from mouthpiece.service.db import open_database
    from mouthpiece.service.metrics import metrics_dir, multiprocess_registry
    from mouthpiece.service.supervisor import WorkerPool

    prepare_shared_state(settings)  # tables, queue, secret, shared files: made once, before the forks
    # read by prometheus_client when each API process imports it: request metrics of all processes
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir(settings))
    for name, value in (("data_dir", settings.data_dir.resolve()), ("api_workers", settings.api_workers),
                        ("log_level", settings.log_level)):
        os.environ[ENV_PREFIX + name.upper()] = str(value)  # what each API process reads back
    if settings.metrics_port is not None:  # the summed files of the API processes + the job table
        _engine, sessions = open_database(settings.db_url)
        _serve_metrics(multiprocess_registry(sessions, metrics_dir(settings)), settings.metrics_port)
    pool = WorkerPool(settings, settings.workers) if settings.workers > 0 else None
    if pool is not None:
        pool.start()
    try:
        uvicorn.run("mouthpiece.service.app:app_from_env", factory=True, workers=settings.api_workers,
                    **options)
    finally:
        if pool is not None:
            pool.stop()
    return EXIT_OK


def _serve_metrics(registry, port: int) -> None:
    from mouthpiece.service.metrics import LOOPBACK, serve_loopback
    from mouthpiece.types import InputError

    try:
        serve_loopback(registry, port)
    except OSError as exc:
        raise InputError(f"--metrics-port {port}: cannot listen on {LOOPBACK}:{port} ({exc.strerror}); "
                         "choose a free port") from None
    logging.getLogger(__name__).info("metrics without auth on http://%s:%d/metrics", LOOPBACK, port)
