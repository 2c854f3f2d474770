import subprocess
import wave

import numpy as np
import pytest

TEXT = ("The rainbow is a division of white light into many beautiful colors. "
        "These take the shape of a long round arch, with its path high above.")


def flite(path, voice, text=TEXT, stretch=1.0):
    subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={stretch}",
                    "-t", text, "-o", str(path)], check=True)
    return path


def write(path, samples, rate=16_000):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def read(path):
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32768.0, w.getframerate()


@pytest.fixture(scope="session")
def refs(tmp_path_factory):
    """Reference clips: two flite speakers (female slt, male kal), ~7–8 s each, and slt
    speaking a third faster."""
    folder = tmp_path_factory.mktemp("refs")
    return {"slt": flite(folder / "slt.wav", "slt"), "kal": flite(folder / "kal.wav", "kal"),
            "fast": flite(folder / "fast.wav", "slt", stretch=0.65), "folder": folder}
