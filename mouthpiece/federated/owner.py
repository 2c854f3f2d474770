"""The data owner's side: private training pairs, a personal checkpoint, joining a federation.

Everything here runs on the owner's machine. `prepare_client_data` writes the training pairs
to a private local file (mode 0600) that only this machine's SuperNode reads; `personalize`
fine-tunes the base model locally and signs the result with the owner's own key; joining is
`flower-supernode` with the owner's node config — and happens only after an explicit opt-in.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mouthpiece.federated.privacy import DpSgdParams
from mouthpiece.federated.task import ClientData, build_client_data, local_train
from mouthpiece.motion.learned import ARCHITECTURE, LearnedMotionModel
from mouthpiece.types import InputError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
DATA_FILE = "client-data.npz"


def find_videos(folder: str | Path) -> list[Path]:
    """The talking videos directly in `folder` (sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of videos")
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES
                    and p.is_file())
    if not videos:
        raise InputError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in {folder}")
    return videos


def prepare_client_data(videos: list[Path], work_dir: str | Path) -> tuple[ClientData, Path]:
    """Build the training pairs and keep them in `work_dir/client-data.npz`, readable by the
    owner only."""
    data = build_client_data(videos)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o700)
    path = data.save(work / DATA_FILE)
    os.chmod(path, 0o600)
    return data, path


@dataclass(frozen=True)
class PersonalResult:
    bundle: Path
    key_id: str
    loss_before: float
    loss_after: float
    epsilon: float | None


def personalize(base: LearnedMotionModel, base_checkpoint, data: ClientData, out: str | Path,
                key: str | Path, *, epochs: int = 3, lr: float = 1e-3,
                dp: DpSgdParams | None = None, seed: int = 0,
                command: list[str] | None = None) -> PersonalResult:
    """Fine-tune `base` on the owner's data only and write a bundle signed with the owner's
    key, whose parent is the base (lineage). `base` is modified in place."""
    from mouthpiece.checkpoints import build_bundle, sign_bundle

    if Path(out).exists():
        raise InputError(f"{out} already exists; a personal checkpoint is written to a new folder")
    if not Path(key).is_file():
        raise InputError(f"signing key {key} not found (create one: mouthpiece ckpt keygen)")
    report = local_train(base, data, epochs=epochs, lr=lr, dp=dp, seed=seed)
    version = base_checkpoint.version.split("+")[0].split("-")[0] + "-personal"
    recipe = {"command": command or ["mouthpiece", "fl", "client"], "seed": seed,
              "data": {"source": "the owner's own talking videos (kept on their machine)",
                       **data.summary()},
              "personalization": {"epochs": epochs, "lr": lr,
                                  "dp_sgd": dp.to_dict() if dp else None,
                                  "epsilon": report.epsilon,
                                  "loss_before": report.loss_before,
                                  "loss_after": report.loss_after}}
    bundle = build_bundle(out, base.network.state_dict(), base.config.to_dict(),
                          architecture=ARCHITECTURE, version=version, recipe=recipe,
                          parent=base_checkpoint, name=_personal_id(base_checkpoint.id))
    key_id = sign_bundle(bundle, key)
    return PersonalResult(bundle, key_id, report.loss_before, report.loss_after, report.epsilon)


def _personal_id(base_id: str) -> str:
    return f"{base_id[:55]}-personal"


def supernode_command(superlink: str, *, data_path: Path, base_path: Path,
                      trust_dir: Path | None, require_secagg: bool = True,
                      dp_sgd_noise: float = 0.0, insecure: bool = False,
                      root_certificates: Path | None = None, auth_key: Path | None = None,
                      port: int | None = None) -> list[str]:
    """`flower-supernode …` for this owner: TLS unless `insecure`, node authentication with
    `auth_key`, never installing dependencies at run time (the default of a SuperNode)."""
    if not insecure and root_certificates is None:
        raise InputError("joining needs the SuperLink's CA certificate (--root-certificates), "
                         "or --insecure for a loopback test")
    node_config = {"data": str(data_path), "base": str(base_path),
                   "require-secagg": require_secagg, "dp-sgd-noise": float(dp_sgd_noise)}
    if trust_dir is not None:
        node_config["trust-dir"] = str(trust_dir)
    cmd = [flower_tool("flower-supernode"), "--superlink", superlink, "--node-config",
           " ".join(f"{k}={_toml(v)}" for k, v in node_config.items())]
    cmd += ["--insecure"] if insecure else ["--root-certificates", str(root_certificates)]
    if auth_key is not None:
        cmd += ["--auth-supernode-private-key", str(auth_key)]
    if port is not None:
        cmd += ["--port", str(port)]
    return cmd


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if '"' in text or "\\" in text or "\n" in text:
        raise InputError(f"path {text!r} cannot be passed to a SuperNode (quote or backslash)")
    return f'"{text}"'


def flower_tool(name: str) -> str:
    """A Flower executable: the one installed beside this Python, else from PATH."""
    import sys

    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else name


def flower_env() -> dict[str, str]:
    """Environment for Flower processes: telemetry off; this Python's scripts first on PATH
    (SuperNodes and the SuperLink start `flwr-clientapp` / `flwr-serverapp` by name)."""
    import sys

    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return dict(os.environ, FLWR_TELEMETRY_ENABLED="0", PATH=path)


def run_supernode(cmd: list[str]) -> int:
    """Run the SuperNode in the foreground until it stops (Ctrl-C ends it)."""
    log.info("joining the federation: %s", " ".join(cmd))
    return subprocess.run(cmd, env=flower_env(), check=False).returncode
