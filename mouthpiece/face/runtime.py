"""Lazily loaded TFLite interpreters (ai-edge-litert) for the MediaPipe face models.

One interpreter per model per process, created on first use (nothing loads at import). A lock
per model makes `run` safe to call from several threads; the models are a few ms each, so
serialising them costs little.
"""

from __future__ import annotations

import contextlib
import os
import threading

import numpy as np

from mouthpiece.face.models import model_path

_NUM_THREADS = 1  # ~2 ms per inference single-threaded; more threads only add overhead here


class TfliteModel:
    """A TFLite model with a single float input; `run` returns its outputs in model order."""

    def __init__(self, name: str) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.name = name
        path = str(model_path(name))
        with _native_stderr_silenced():  # LiteRT prints an INFO line on fd 2; keep stderr clean
            self._interpreter = Interpreter(model_path=path, num_threads=_NUM_THREADS)
            self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._outputs = self._interpreter.get_output_details()
        self.input_shape = tuple(int(d) for d in self._input["shape"])  # (1, H, W, 3)
        self._lock = threading.Lock()

    @property
    def input_size(self) -> int:
        return self.input_shape[1]

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """tensor: (H, W, 3) or (1, H, W, 3) float32 → list of output arrays (copies)."""
        batch = np.ascontiguousarray(tensor, dtype=np.float32).reshape(self.input_shape)
        with self._lock:
            self._interpreter.set_tensor(self._input["index"], batch)
            self._interpreter.invoke()
            return [self._interpreter.get_tensor(d["index"]).copy() for d in self._outputs]


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send file descriptor 2 to /dev/null for the duration (C++ logging bypasses sys.stderr)."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_models: dict[str, TfliteModel] = {}
_models_lock = threading.Lock()


def get_model(name: str) -> TfliteModel:
    """The process-wide interpreter for model file `name` (created on first call)."""
    with _models_lock:
        model = _models.get(name)
        if model is None:
            model = _models[name] = TfliteModel(name)
        return model
