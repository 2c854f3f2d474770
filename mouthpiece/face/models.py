"""Where the MediaPipe face models live and how to check them.

The models come from the mediapipe==0.10.21 wheel, extracted once at set-up by
`scripts/install_face_models.py` (the mediapipe package itself is not a dependency: it pins
protobuf<5 and drags in jax). They are verified by SHA-256 before use.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from mouthpiece.types import InputError

MEDIAPIPE_VERSION = "0.10.21"
# file name → (path inside the mediapipe wheel, sha256)
FACE_MODELS: dict[str, tuple[str, str]] = {
    "face_detection_short_range.tflite": (
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    ),
    "face_detection_full_range_sparse.tflite": (
        "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
        "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
    ),
    "face_landmark.tflite": (
        "mediapipe/modules/face_landmark/face_landmark.tflite",
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    ),
}


def default_model_dir() -> Path:
    """The model cache of this installation (inside the virtual environment)."""
    return Path(sys.prefix) / "share" / "mouthpiece" / "models"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_verified: set[Path] = set()


def model_path(name: str, model_dir: Path | None = None) -> Path:
    """Path of a verified model file; a clear error if it is missing or altered."""
    path = (model_dir or default_model_dir()) / name
    if path in _verified:
        return path
    if not path.is_file():
        raise InputError(
            f"face model {name} is not installed in {path.parent}; run `make demo` "
            "(or `python scripts/install_face_models.py`) to set it up"
        )
    if sha256_file(path) != FACE_MODELS[name][1]:
        raise InputError(f"face model {path} does not match its pinned SHA-256; reinstall it")
    _verified.add(path)
    return path
