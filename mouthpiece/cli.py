"""`mouthpiece …` command line: parses, calls the library, reports (CONTRACT.md).

Exit codes: 0 success; 2 bad input (one `error: …` line on stderr); 1 internal failure.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

EXIT_INTERNAL, EXIT_INPUT = 1, 2

# Before anything loads numpy: OpenBLAS's own worker threads only spin against the engine's
# processes and threads on a small machine (measured: ~6 % of a generation's CPU time); the
# BLAS work here is small. A setting already in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage mistakes as one `error:` line and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (see `{self.prog} --help`)\n")
        sys.exit(EXIT_INPUT)


# Sub-command adapters: mouthpiece/commands/<name>.py, each with `register(subparsers)`.
COMMAND_MODULES = ("generate", "tts", "batch", "ckpt", "train", "worker", "serve", "admin", "fl")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mouthpiece", description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", "-v", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"mouthpiece.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from mouthpiece.types import InputError

    try:
        return args.func(args)
    except InputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return EXIT_INTERNAL
    except Exception as exc:  # the one place that turns unexpected failures into exit 1
        if os.environ.get("MOUTHPIECE_DEBUG"):
            raise
        sys.stderr.write(f"error: internal failure ({type(exc).__name__}: {exc}); "
                         "rerun with MOUTHPIECE_DEBUG=1 for a traceback\n")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
