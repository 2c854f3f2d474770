"""Real deployments: the Flower App that a SuperLink runs, and the helpers around it.

A deployment is SuperLink + SuperNodes as separate processes. `flwr run APP_DIR CONNECTION`
submits the Flower App in APP_DIR (written by `write_app_dir`: a pyproject.toml whose
components are `server_app` and `client_app` of `mouthpiece.federated.flower_app`, both
importable from the installed mouthpiece, so no dependency is ever installed at run time). The ServerApp reads its settings
from the run config; each SuperNode's ClientApp reads its owner's settings from the node
config that `mouthpiece fl client` passes to `flower-supernode --node-config`:

    data="…/client-data.npz"   the training pairs built locally from the owner's videos
    base="…/bundle"            the verified bundle whose config fixes the architecture
    require-secagg=true        refuse plain (non-SecAgg+) training requests
    dp-sgd-noise=0.0           per-record DP-SGD noise multiplier (0 = off)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mouthpiece.federated.server_app import FederationParams

log = logging.getLogger(__name__)

APP_NAME = "mouthpiece-federated"
COMPONENTS = "mouthpiece.federated.flower_app"  # module holding `server_app` and `client_app`
# Run config of the ServerApp: name → default (TOML types). `mouthpiece fl server` overrides.
RUN_CONFIG_DEFAULTS: dict[str, object] = {
    "data-dir": "data", "registry": "", "trust-dir": "", "key": "", "base": "stable",
    "name": "", "rounds": 3, "min-clients": 2, "fraction-fit": 1.0, "local-epochs": 1,
    "lr": 1e-3, "proximal-mu": 0.0, "clip-norm": 0.5, "noise-multiplier": 0.0,
    "dp-delta": 1e-5, "population": 0, "secagg": True, "quantize-bits": 0,
    "reconstruction-threshold": 0.6, "secagg-timeout": 120.0, "seed": 0, "command": "",
    "aggregator": "mean",
}


def params_from_run_config(config) -> "FederationParams":
    """FederationParams from a Flower run config (0 means "off" for the optional numbers)."""
    from mouthpiece.federated.server_app import FederationParams

    def get(key):
        return config.get(key, RUN_CONFIG_DEFAULTS[key])

    return FederationParams(
        rounds=int(get("rounds")), min_clients=int(get("min-clients")),
        fraction_fit=float(get("fraction-fit")), local_epochs=int(get("local-epochs")),
        lr=float(get("lr")), proximal_mu=float(get("proximal-mu")),
        clip_norm=float(get("clip-norm")),
        noise_multiplier=float(get("noise-multiplier")) or None,
        dp_delta=float(get("dp-delta")), population=int(get("population")) or None,
        secagg=bool(get("secagg")), quantize_bits=int(get("quantize-bits")) or None,
        reconstruction_threshold=float(get("reconstruction-threshold")),
        secagg_timeout_s=float(get("secagg-timeout")) or None, seed=int(get("seed")))


def registry_from_run_config(config):
    from mouthpiece.checkpoints import Registry, trust_dir_for

    data_dir = Path(str(config.get("data-dir", "data")))
    root = Path(str(config.get("registry") or data_dir / "checkpoints"))
    trust = Path(str(config.get("trust-dir") or trust_dir_for(data_dir)))
    return Registry(root, trust)


def serve(grid, context) -> None:
    """ServerApp main: rounds over the registry's base, publishing each round (resumes)."""
    from mouthpiece.federated.federation import deployed_main, make_publisher

    config = context.run_config
    params = params_from_run_config(config)
    key = str(config.get("key", ""))
    if not key:
        raise ValueError("the server needs its signing key: run config key=PATH")
    registry = registry_from_run_config(config)
    base, publisher = make_publisher(registry, key, str(config.get("base", "stable")),
                                     name=str(config.get("name", "")) or None,
                                     command=str(config.get("command", "")).split() or
                                     ["mouthpiece", "fl", "server"], params=params)
    deployed_main(params, base, publisher,
                  aggregate=aggregator_for(str(config.get("aggregator", "mean"))))(grid, context)


def aggregator_for(name: str):
    """None for plain FedAvg, else the robust aggregator `name` (federated/robust.py)."""
    if name == "mean":
        return None
    from mouthpiece.federated.robust import make_aggregator

    return make_aggregator(name)


def client_setup(context):
    """(data, model config, settings) of this SuperNode from its node config."""
    import json

    from mouthpiece.checkpoints import verify_bundle
    from mouthpiece.federated.client_app import ClientSettings
    from mouthpiece.federated.privacy import DpSgdParams
    from mouthpiece.federated.task import ClientData
    from mouthpiece.motion.learned import Audio2MouthConfig

    node = context.node_config
    data = ClientData.load(Path(str(node["data"])))
    base = Path(str(node["base"]))
    verify_bundle(base, node.get("trust-dir") or None, allow_untrusted=False)
    config = Audio2MouthConfig.from_dict(json.loads((base / "config.json").read_text()))
    noise = float(node.get("dp-sgd-noise", 0.0))
    settings = ClientSettings(secagg=_truthy(node.get("require-secagg", True)),
                              dp_sgd=DpSgdParams(noise) if noise > 0 else None)
    return data, config, settings


def _truthy(value) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")


def deployed_server_app():
    """The ServerApp of a deployment (settings from the run config)."""
    from flwr.serverapp import ServerApp

    app = ServerApp()
    app.main()(serve)
    return app


def deployed_client_app():
    """The ClientApp of a deployment (settings from each SuperNode's node config)."""
    from mouthpiece.federated.client_app import client_app_for

    return client_app_for(client_setup, lambda context: _truthy(
        context.node_config.get("require-secagg", True)))


def write_app_dir(folder: str | Path, run_config: dict | None = None) -> Path:
    """A Flower App folder (pyproject.toml only) whose components are this module's apps."""
    import tomli_w

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {**RUN_CONFIG_DEFAULTS, **(run_config or {})}
    project = {
        "build-system": {"requires": ["hatchling"], "build-backend": "hatchling.build"},
        "project": {"name": APP_NAME, "version": "1.0.0", "dependencies": []},
        "tool": {"flwr": {"app": {
            "publisher": "mouthpiece",
            "components": {"serverapp": f"{COMPONENTS}:server_app",
                           "clientapp": f"{COMPONENTS}:client_app"},
            "config": config}}},
    }
    (folder / "pyproject.toml").write_bytes(tomli_w.dumps(project).encode())
    return folder


def superlink_command(port: int, *, host: str = "127.0.0.1", insecure: bool = False,
                      certfile: Path | None = None, keyfile: Path | None = None,
                      ca_certfile: Path | None = None, node_auth: bool = True,
                      database: Path | None = None) -> list[str]:
    """`flower-superlink …` hardened as docs/federated.md says: TLS (unless `insecure`, for a
    loopback test), SuperNode authentication, no dependency installation at run time."""
    from mouthpiece.federated.owner import flower_tool

    cmd = [flower_tool("flower-superlink"), "--host", host, "--port", str(port),
           "--disable-runtime-dependency-installation"]
    if insecure:
        cmd.append("--insecure")
    else:
        if not (certfile and keyfile and ca_certfile):
            raise ValueError("a TLS SuperLink needs a certificate, its key and the CA certificate")
        cmd += ["--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile),
                "--ssl-ca-certfile", str(ca_certfile)]
    if node_auth:
        cmd.append("--enable-supernode-auth")
    if database is not None:
        cmd += ["--database", str(database)]
    return cmd


def write_connection(flwr_home: str | Path, name: str, address: str, *, insecure: bool = False,
                     root_certificates: Path | None = None) -> Path:
    """The Flower CLI's config.toml naming one SuperLink connection (Control API address)."""
    import tomli_w

    home = Path(flwr_home)
    home.mkdir(parents=True, exist_ok=True)
    connection: dict[str, object] = {"address": address}
    if insecure:
        connection["insecure"] = True
    elif root_certificates is not None:
        connection["root-certificates"] = str(Path(root_certificates).resolve())
    path = home / "config.toml"
    path.write_bytes(tomli_w.dumps({"superlink": {"default": name, name: connection}}).encode())
    return path


def flwr_run_command(app_dir: Path, connection: str, run_config: dict) -> list[str]:
    """`flwr run APP CONNECTION --stream --run-config …` (values as TOML)."""
    from mouthpiece.federated.owner import _toml, flower_tool

    unknown = set(run_config) - set(RUN_CONFIG_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown run config keys {sorted(unknown)}")
    pairs = " ".join(f"{k}={_toml(v)}" for k, v in run_config.items())
    return [flower_tool("flwr"), "run", str(app_dir), connection, "--stream",
            "--run-config", pairs]
