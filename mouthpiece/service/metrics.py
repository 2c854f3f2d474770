"""Prometheus metrics of one app (its own CollectorRegistry, so several apps can live in one process).

Request metrics are counted in the API process; with several API processes (`mouthpiece serve
--api-workers N`) prometheus_client's multiprocess mode keeps each process's values in files
under `multiprocess_dir` and a scrape adds them up (serve sets PROMETHEUS_MULTIPROC_DIR for
its API processes before they import prometheus_client). Job metrics (queue depth by priority, jobs
by status, failures by reason, job durations) are computed from the jobs table at scrape
time: workers are other processes, and the table is the source of truth.

Who may read them: on the API port, `/metrics` needs `Authorization: Bearer <token>` with the
`metrics_token` setting (a scraper) or an admin's access token; `serve_loopback` serves the same
text without auth on a separate port bound to 127.0.0.1 only (`serve --metrics-port`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, start_wsgi_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from mouthpiece.service.config import Settings
from mouthpiece.service.db import JOB_STATUSES, Job

log = logging.getLogger(__name__)

REQUEST_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS_S = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)


def metrics_dir(settings: Settings) -> Path:
    """Where the API processes of one `serve --api-workers N` keep their metric values."""
    return settings.data_dir.resolve() / "metrics"


class Metrics:
    """The app's registry and the counters the API updates."""

    def __init__(self, sessions: Callable[[], Session], multiprocess_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("mouthpiece_http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("mouthpiece_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route"], buckets=REQUEST_BUCKETS_S, registry=self.registry)
        self.quota_refusals = Counter("mouthpiece_quota_refusals_total",
                                      "Job submissions refused by a plan limit",
                                      ["plan", "reason"], registry=self.registry)
        self.rate_limited = Counter("mouthpiece_rate_limited_total", "Requests refused by a rate limit",
                                    ["scope"], registry=self.registry)
        if multiprocess_dir is None:
            self.scraped = self.registry
            self.registry.register(JobTableCollector(sessions))
        else:  # several API processes: each writes its values to files there; a scrape sums them all
            self.scraped = multiprocess_registry(sessions, multiprocess_dir)

    def exposition(self) -> bytes:
        """The Prometheus text of every API process's request metrics plus the job metrics."""
        return generate_latest(self.scraped)

    def observe_request(self, method: str, route: str, status: int, duration_s: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(duration_s)


def multiprocess_registry(sessions: Callable[[], Session], multiprocess_dir: Path) -> CollectorRegistry:
    """What a scrape reads with several API processes: their summed files plus the job metrics."""
    registry = CollectorRegistry(auto_describe=True)
    MultiProcessCollector(registry, path=str(multiprocess_dir))
    registry.register(JobTableCollector(sessions))
    return registry


LOOPBACK = "127.0.0.1"


def serve_loopback(registry: CollectorRegistry, port: int):
    """Serve `registry` as Prometheus text at http://127.0.0.1:<port>/metrics (no auth: only
    processes on this machine can connect) from a daemon thread; → (server, thread)."""
    return start_wsgi_server(port, addr=LOOPBACK, registry=registry)


class JobTableCollector(Collector):
    """Job gauges and counters read from the jobs table on every scrape."""

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self._sessions = sessions

    def describe(self) -> list:
        return []  # computed at scrape time; nothing to check at registration

    def collect(self) -> Iterator:
        up = GaugeMetricFamily("mouthpiece_jobs_table_up", "1 if the jobs table could be read for this scrape")
        try:
            with self._sessions() as session:
                families = list(_job_families(session))
        except SQLAlchemyError as exc:
            log.warning("metrics: jobs table unreadable (%s)", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _job_families(session: Session) -> Iterator:
    depth = GaugeMetricFamily("mouthpiece_queue_depth", "Queued jobs by priority", labels=["priority"])
    for priority, count in session.execute(
            select(Job.priority, func.count()).where(Job.status == "queued").group_by(Job.priority)):
        depth.add_metric([str(priority)], count)
    yield depth

    by_status = GaugeMetricFamily("mouthpiece_jobs", "Jobs by status", labels=["status"])
    counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    for status in JOB_STATUSES:
        by_status.add_metric([status], counts.get(status, 0))
    yield by_status

    failures = CounterMetricFamily("mouthpiece_job_failures", "Failed jobs by reason", labels=["reason"])
    for reason, count in session.execute(
            select(Job.error_code, func.count()).where(Job.status == "failed").group_by(Job.error_code)):
        failures.add_metric([reason or "unknown"], count)
    yield failures

    durations = HistogramMetricFamily("mouthpiece_job_duration_seconds",
                                      "Run time of finished jobs (first start to end)",
                                      labels=["outcome"])
    elapsed = Job.finished_at - Job.started_at
    columns = [func.sum(case((elapsed <= bound, 1), else_=0)) for bound in JOB_BUCKETS_S]
    rows = session.execute(
        select(Job.status, func.count(), func.sum(elapsed), *columns)
        .where(Job.status.in_(("succeeded", "failed")), Job.started_at.is_not(None),
               Job.finished_at.is_not(None))
        .group_by(Job.status))
    for status, count, total, *cumulative in rows:
        buckets = [(str(float(b)), int(c or 0)) for b, c in zip(JOB_BUCKETS_S, cumulative)]
        buckets.append(("+Inf", int(count)))
        durations.add_metric([status], buckets, float(total or 0.0))
    yield durations
