"""CLI sub-command adapters: each module exposes `register(subparsers)` for `mouthpiece.cli`."""
