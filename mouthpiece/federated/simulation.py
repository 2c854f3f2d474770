"""Run a ServerApp and N ClientApps on one machine.

Two engines, same apps:
- "inprocess" (default): Flower's own simulation runtime pieces — the in-memory LinkState,
  the InMemoryGrid the ServerApp talks to, the Fleet-side message pump (`vce_api.run_api`)
  — with a backend that runs each ClientApp call in this process instead of a Ray actor.
  Start-up is a few hundred milliseconds; messages are processed one at a time.
- "ray": `flwr.simulation.run_simulation` (Ray actors). Measured on this 2-core machine
  under load: ~40 s before the first round (actor start-up and imports), then ~1–2 s a
  round for a tiny model — too heavy for tests, fine for long runs.
Both pass real Flower Messages through the same mods, so SecAgg+ runs all four stages.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from queue import Empty, Queue

log = logging.getLogger(__name__)

ENGINES = ("inprocess", "ray")


@dataclass
class WireLog:
    """Bytes of every message as serialised for the wire (protobuf), per direction."""

    uploads: list[tuple[int, str, int]] = field(default_factory=list)  # (node, round, bytes)
    downloads: list[tuple[int, str, int]] = field(default_factory=list)

    def upload_bytes_per_client_round(self) -> dict[tuple[int, str], int]:
        """Total bytes each client sent in each round (all protocol stages together)."""
        out: dict[tuple[int, str], int] = {}
        for node, group, size in self.uploads:
            out[(node, group)] = out.get((node, group), 0) + size
        return out


def _in_process_backend_class():
    from flwr.common.serde import message_from_proto, message_to_proto
    from flwr.server.superlink.fleet.vce.backend import Backend

    class InProcessBackend(Backend):
        """Runs the ClientApp in the calling thread. Messages cross a protobuf round trip in
        both directions, as on a real connection: nothing is shared by reference between
        the server and a client (SecAgg+'s mod edits the content it receives)."""

        def __init__(self, backend_config, wire: WireLog | None = None) -> None:
            super().__init__(backend_config)
            self.app = None
            self.wire = wire

        def build(self, app_fn) -> None:
            self.app = app_fn()

        @property
        def num_workers(self) -> int:
            return 1

        def is_worker_idle(self) -> bool:
            return True

        def terminate(self) -> None:
            self.app = None

        def process_message(self, message, context):
            incoming = message_to_proto(message)
            reply = self.app(message_from_proto(incoming), context)
            outgoing = message_to_proto(reply)
            if self.wire is not None:
                node, group = message.metadata.dst_node_id, message.metadata.group_id
                self.wire.downloads.append((node, group, incoming.ByteSize()))
                self.wire.uploads.append((node, group, outgoing.ByteSize()))
            return message_from_proto(outgoing), context

    return InProcessBackend


def run_in_process(server_app, client_app, num_clients: int, wire: WireLog | None = None) -> None:
    """Run `server_app` against `num_clients` virtual SuperNodes (partition-id 0 … N−1), all
    in this process; returns when the ServerApp finishes, re-raising its exception.
    `wire` collects the serialised size of every message."""
    from flwr.app import Context, RecordDict
    from flwr.app.user_config import UserConfig
    from flwr.common.constant import RUN_ID_NUM_BYTES, SUPERLINK_NODE_ID, TASK_ID_NUM_BYTES
    from flwr.proto.task_pb2 import Task  # pylint: disable=no-name-in-module
    from flwr.server.superlink.fleet.vce.metrics import VceMetrics
    from flwr.server.superlink.fleet.vce.vce_api import (
        _register_node_info_stores, _register_nodes, run_api,
    )
    from flwr.server.superlink.linkstate import LinkStateFactory
    from flwr.server.superlink.linkstate.in_memory_linkstate import RunRecord
    from flwr.server.superlink.linkstate.utils import generate_rand_int_from_bytes
    from flwr.simulation.run_simulation import run_serverapp_th
    from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME, NOOP_FEDERATION_ID
    from flwr.supercore.object_store import ObjectStoreFactory
    from flwr.supercore.run import Run
    from flwr.supercore.task_identity import TaskIdentity
    from flwr.superlink.federation import NoOpFederationManager
    from flwr.superlink.grid import InMemoryGrid

    run = Run.create_empty(run_id=generate_rand_int_from_bytes(RUN_ID_NUM_BYTES))
    run.primary_task_id = generate_rand_int_from_bytes(TASK_ID_NUM_BYTES)
    run.federation_id = NOOP_FEDERATION_ID
    # Messages built by the ServerApp take their run id from this process-wide identity
    # (as in Flower's own run_simulation).
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run.run_id, SUPERLINK_NODE_ID
    factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(),
                               ObjectStoreFactory())
    state = factory.state()
    state.run_ids[run.run_id] = RunRecord(run=run)
    state.task_store[run.primary_task_id] = Task(task_id=run.primary_task_id, run_id=run.run_id)
    grid = InMemoryGrid(state_factory=factory)
    grid.set_run(run)

    stop = threading.Event()
    errors: Queue[BaseException] = Queue()
    contexts: Queue = Queue()
    server_context = Context(run_id=run.run_id, node_id=0, node_config=UserConfig(),
                             state=RecordDict(), run_config=UserConfig())
    server_thread = run_serverapp_th(None, server_app, server_context, grid, "", stop, errors,
                                     False, contexts)
    nodes = _register_nodes(num_nodes=num_clients, state_factory=factory)
    stores = _register_node_info_stores(nodes_mapping=nodes, run=run)
    backend_class = _in_process_backend_class()
    try:
        run_api(lambda: client_app, lambda: backend_class({}, wire), nodes, factory, stores, stop,
                VceMetrics())
    finally:
        stop.set()
        server_thread.join()
    try:
        raise errors.get_nowait()
    except Empty:
        pass


def run_ray(server_app, client_app, num_clients: int, cpus: int = 2) -> None:
    """Flower's Ray simulation engine, limited to `cpus` CPUs (one per client actor)."""
    from flwr.simulation import run_simulation

    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=num_clients,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": cpus, "include_dashboard": False}})


def run(server_app, client_app, num_clients: int, engine: str = "inprocess",
        wire: WireLog | None = None) -> None:
    """Run the apps with `engine` ("inprocess" or "ray"); `wire` works in-process only."""
    if engine == "inprocess":
        run_in_process(server_app, client_app, num_clients, wire)
    elif engine == "ray":
        run_ray(server_app, client_app, num_clients)
    else:
        raise ValueError(f"unknown simulation engine {engine!r} (choose {ENGINES})")
