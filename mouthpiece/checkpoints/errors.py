"""The one error type of the checkpoints package: a refusal with a machine-readable code."""

from __future__ import annotations

from mouthpiece.types import InputError


class CheckpointError(InputError):
    """A bundle, key, registry entry or archive was refused; `.code` says which check failed.

    Codes: bad_signature, unsigned, untrusted, bad_manifest, unsupported_format, incompatible,
    missing_file, symlink, unexpected_file, size_mismatch, hash_mismatch, too_large,
    bad_config, bad_weights, release_mismatch, unsafe_path, bad_key, bad_ref, not_found, conflict.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
