"""Robust aggregation for federations that run without secure aggregation.

Clipping bounds what one client can do to a FedAvg round: with every update clipped to norm
C, a poisoned client moves the mean of N updates by at most C/N (plus its share of honest
drift). A coordinate-wise robust statistic goes further and drops it: the trimmed mean
(Yin et al. 2018) discards the `beta` share of the largest and of the smallest values of every
coordinate before averaging; the median keeps the middle one. Both are Flower's own
(`flwr.server.strategy.aggregate`), the statistics behind its FedTrimmedAvg / FedMedian
strategies, wrapped as an `Aggregator` for `server_app.make_strategy(aggregate=…)`, which
aggregates decoded, clipped *updates* (Flower's strategies would aggregate raw weights and
know nothing of the update encodings).

Trade-off: a robust statistic needs every client's update in the clear, so it cannot run
under SecAgg+ (where the server only learns the sum) — `make_strategy` refuses the
combination. A deployment picks one: privacy of individual updates from the server
(SecAgg+, poisoning only bounded by clipping) or resistance to poisoning (robust
aggregation, the server sees each update). It also costs accuracy with honest but
heterogeneous clients: trimming discards real signal from clients unlike the majority.
"""

from __future__ import annotations

import numpy as np

from mouthpiece.federated.server_app import Aggregator
from mouthpiece.types import InputError

AGGREGATORS = ("mean", "trimmed-mean", "median")
DEFAULT_TRIM = 0.2  # share cut from each tail per coordinate (Flower's FedTrimmedAvg default)


def _check(updates: list[list[np.ndarray]]) -> None:
    if not updates:
        raise InputError("nothing to aggregate: no client update")
    shapes = [tuple(np.shape(a)) for a in updates[0]]
    if any([tuple(np.shape(a)) for a in u] != shapes for u in updates[1:]):
        raise InputError("client updates differ in shape")


def mean(updates: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Plain FedAvg of updates (every client weighs 1)."""
    _check(updates)
    return [np.mean(np.stack(parts), axis=0).astype(np.float32) for parts in zip(*updates)]


def trimmed_mean(updates: list[list[np.ndarray]], beta: float = DEFAULT_TRIM
                 ) -> list[np.ndarray]:
    """Coordinate-wise trimmed mean: drop int(beta·N) values at each end (Flower's)."""
    from flwr.server.strategy.aggregate import aggregate_trimmed_avg

    _check(updates)
    if not 0.0 <= beta < 0.5:
        raise InputError(f"the trimmed share must be within [0, 0.5), got {beta}")
    return [np.asarray(a, np.float32) for a in
            aggregate_trimmed_avg([(list(u), 1) for u in updates], beta)]


def median(updates: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Coordinate-wise median (Flower's)."""
    from flwr.server.strategy.aggregate import aggregate_median

    _check(updates)
    return [np.asarray(a, np.float32) for a in aggregate_median([(list(u), 1) for u in updates])]


def make_aggregator(name: str, beta: float = DEFAULT_TRIM) -> Aggregator:
    """The aggregator called `name` (one of AGGREGATORS) for `make_strategy(aggregate=…)`."""
    if name == "mean":
        return mean
    if name == "trimmed-mean":
        if not 0.0 <= beta < 0.5:
            raise InputError(f"the trimmed share must be within [0, 0.5), got {beta}")
        return lambda updates: trimmed_mean(updates, beta)
    if name == "median":
        return median
    raise InputError(f"unknown aggregator {name!r}; use one of {', '.join(AGGREGATORS)}")


def trimmed_per_side(n_clients: int, beta: float = DEFAULT_TRIM) -> int:
    """Clients cut from each tail of every coordinate: a trimmed mean with this many or
    fewer poisoned clients never averages one of their values unless it lies inside the
    honest range."""
    return int(beta * n_clients)


__all__ = ["AGGREGATORS", "Aggregator", "DEFAULT_TRIM", "make_aggregator", "mean", "median",
           "trimmed_mean", "trimmed_per_side"]
