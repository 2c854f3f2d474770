"""Federated rounds as signed checkpoint bundles in the registry, with lineage; resume.

Round k of federation NAME is installed as `NAME@<base major>.<k>.0`, signed with the server's
key. Its manifest's `parent` is round k−1 (round 1's parent: the base, e.g. `stable`), and
`recipe.federated` records the round, the number of clients aggregated, the DP parameters, ε
spent so far with the accountant's ledger, SecAgg+ and quantization settings. A restarted
server finds the highest round of NAME and continues from it. Aliases are never moved here:
`promote` (admin, `mouthpiece fl publish`) points `canary` (or another alias) at a round.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mouthpiece.checkpoints import LoadedCheckpoint, Registry, build_bundle, sign_bundle
from mouthpiece.checkpoints.manifest import MANIFEST_NAME, check_id
from mouthpiece.motion.learned import ARCHITECTURE, LearnedMotionModel
from mouthpiece.types import InputError

log = logging.getLogger(__name__)

FEDERATED_KEY = "federated"  # recipe section holding a round's lineage


@dataclass(frozen=True)
class ResumePoint:
    """The last published round of a federation: its model, round number and lineage."""

    ref: str
    round: int
    model: LearnedMotionModel
    lineage: dict  # recipe["federated"] of that bundle


def default_name(base_id: str) -> str:
    """Federation checkpoint id derived from the base's: `<base>-fed`."""
    return check_id(f"{base_id[:60]}-fed", "federation name")


class RoundPublisher:
    """Writes each round's global weights into `registry` as a signed bundle."""

    def __init__(self, registry: Registry, key: str | Path, name: str,
                 base: LearnedMotionModel, base_checkpoint: LoadedCheckpoint,
                 command: list[str], run_settings: dict) -> None:
        self.registry, self.key, self.name = registry, Path(key), check_id(name, "federation name")
        self.base, self.command, self.settings = base, command, run_settings
        self.base_summary = {"id": base_checkpoint.id, "version": base_checkpoint.version,
                             "sha256": base_checkpoint.sha256}
        self.major = int(base_checkpoint.version.split(".")[0])
        self._parent: object = base_checkpoint  # lineage link of the next round

    def version(self, server_round: int) -> str:
        return f"{self.major}.{server_round}.0"

    def rounds(self) -> dict[int, str]:
        """Published rounds of this federation: round → `id@version`."""
        out = {}
        for item in self.registry.list():
            if item.id != self.name:
                continue
            recipe = json.loads((item.path / MANIFEST_NAME).read_text())["recipe"]
            lineage = recipe.get(FEDERATED_KEY) or {}
            if isinstance(lineage.get("round"), int):
                out[lineage["round"]] = item.ref
        return out

    def resume_point(self) -> ResumePoint | None:
        """The highest published round, fully verified again; None for a fresh federation.
        Refused if that round was trained from another base than this run's."""
        rounds = self.rounds()
        if not rounds:
            return None
        last = max(rounds)
        loaded = self.registry.load(rounds[last], architecture=ARCHITECTURE)
        lineage = loaded.manifest["recipe"][FEDERATED_KEY]
        base_sha = lineage.get("base", {}).get("sha256")
        if base_sha != self.base_summary["sha256"]:
            raise InputError(
                f"federation {self.name} was trained from base {str(base_sha)[:12]}…, not from "
                f"{self.base_summary['id']} {self.base_summary['version']}: start a new "
                "federation with another --name")
        self._parent = loaded
        return ResumePoint(rounds[last], last, LearnedMotionModel.from_checkpoint(loaded), lineage)

    def publish(self, server_round: int, weights: list[np.ndarray], lineage: dict) -> str:
        """Build, sign and install round `server_round`; returns its `id@version`."""
        import torch

        names = list(self.base.network.state_dict().keys())
        tensors = {n: torch.from_numpy(np.array(w, np.float32)) for n, w in zip(names, weights)}
        record = dict(lineage, round=server_round, base=self.base_summary)
        recipe = {"command": self.command, "seed": self.settings.get("seed", 0),
                  "data": {"source": "federated: private client videos, never sent to the server",
                           "clients_this_round": lineage.get("clients")},
                  FEDERATED_KEY: record, "run": self.settings}
        staging = Path(tempfile.mkdtemp(prefix=".fl-staging-", dir=self._staging_root()))
        try:
            bundle = build_bundle(staging / "bundle", tensors, self.base.config.to_dict(),
                                  architecture=ARCHITECTURE, version=self.version(server_round),
                                  recipe=recipe, parent=self._parent, name=self.name)
            sign_bundle(bundle, self.key)
            release_id = json.loads((bundle / MANIFEST_NAME).read_text())["release_id"]
            report = self.registry.install(bundle)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._parent = {"id": report.id, "version": report.version, "sha256": report.sha256,
                        "release_id": release_id}
        ref = f"{report.id}@{report.version}"
        log.info("published %s (round %d)", ref, server_round)
        return ref

    def _staging_root(self) -> Path:
        root = self.registry.root / ".staging"
        root.mkdir(parents=True, exist_ok=True)
        return root


def promote(registry: Registry, ref: str, alias: str = "canary") -> str:
    """Admin step: point `alias` at a published round (`id@version`); returns the target."""
    if alias == "stable":
        log.warning("moving `stable` by hand: clients and the next federation start from it")
    return registry.set_alias(alias, ref)
