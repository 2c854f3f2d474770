"""`mouthpiece worker`: a job worker process (scaled mode runs several, on any machine).

Settings come from MOUTHPIECE_* environment variables (service/config.py) and the flags below.
`--cleanup` deletes the files of jobs finished more than `retention_days` ago, then exits.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

EXIT_OK = 0


def register(subparsers) -> None:
    p = subparsers.add_parser("worker", help="run jobs from the service queue (until SIGTERM/SIGINT)")
    p.add_argument("--data-dir", help="data folder (default: $MOUTHPIECE_DATA_DIR or ./data)")
    p.add_argument("--concurrency", type=int, default=1, help="jobs run at once by this process (default 1)")
    p.add_argument("--cleanup", action="store_true",
                   help="delete stored files of jobs finished more than retention_days ago, then exit")
    p.add_argument("--json", action="store_true", help="with --cleanup: print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mouthpiece.service.config import settings_from_env
    from mouthpiece.service.logs import configure_logging
    from mouthpiece.types import InputError

    if args.concurrency < 1:
        raise InputError(f"--concurrency must be ≥ 1, got {args.concurrency}")
    settings = settings_from_env(data_dir=Path(args.data_dir) if args.data_dir else None)
    if args.cleanup:
        return _cleanup(settings, args.json)
    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    from mouthpiece.service.worker import run_worker

    run_worker(settings, concurrency=args.concurrency)
    return EXIT_OK


def _cleanup(settings, as_json: bool) -> int:
    from mouthpiece.service.retention import cleanup

    report_cleanup(cleanup(settings), settings.retention_days, as_json)
    return EXIT_OK


def report_cleanup(purged: list[str], retention_days: float, as_json: bool) -> None:
    """Print a clean-up's result (shared with `mouthpiece admin cleanup`)."""
    if as_json:
        print(json.dumps({"purged": purged, "retention_days": retention_days}))
    else:
        sys.stdout.write(f"purged the files of {len(purged)} job(s) finished more than "
                         f"{retention_days:g} days ago\n")
