"""Worker processes started by `mouthpiece serve` (embedded mode), restarted if one dies.

Each is a fresh interpreter (`spawn`) running `worker.run_worker(settings)`; stopping sends
SIGTERM (the worker finishes or hands back its job within `settings.shutdown_grace_s`), then
SIGKILL to any that outlive the grace period.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading

from mouthpiece.service.config import Settings

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0


def _worker_main(settings: Settings) -> None:
    from mouthpiece.service.logs import configure_logging
    from mouthpiece.service.worker import run_worker

    configure_logging()
    run_worker(settings)


class WorkerPool:
    def __init__(self, settings: Settings, count: int) -> None:
        self.settings, self.count = settings, count
        self._context = multiprocessing.get_context("spawn")
        self._processes: list[multiprocessing.Process] = []
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    def _spawn(self, index: int) -> multiprocessing.Process:
        process = self._context.Process(target=_worker_main, args=(self.settings,),
                                        name=f"mouthpiece-worker-{index}")
        process.start()
        log.info("worker %d started (pid %s)", index, process.pid)
        return process

    def start(self) -> None:
        self._processes = [self._spawn(i) for i in range(self.count)]
        self._monitor = threading.Thread(target=self._watch, name="mouthpiece-worker-pool", daemon=True)
        self._monitor.start()

    def _watch(self) -> None:
        while not self._stopping.wait(CHECK_EVERY_S):
            for index, process in enumerate(self._processes):
                if not process.is_alive() and not self._stopping.is_set():
                    log.warning("worker %d (pid %s) exited with %s; restarting", index, process.pid,
                                process.exitcode)
                    process.join()
                    self._processes[index] = self._spawn(index)

    def stop(self) -> None:
        self._stopping.set()
        if self._monitor is not None:
            self._monitor.join()
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join(self.settings.shutdown_grace_s + 5)
            if process.is_alive():
                log.warning("worker pid %s outlived its grace period; killing it", process.pid)
                process.kill()
                process.join()
