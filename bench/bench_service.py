"""Service bench (issue 4): API latency under load, quota under racing submissions, kill -9 recovery.

    .venv/bin/python bench/bench_service.py [--quick] [--parts abc] [--out outputs/bench_service.json]

(a) Load. A real `mouthpiece serve --workers 0` (uvicorn, SQLite, local storage: the embedded
    mode; `--api-workers N` for N API processes) on 127.0.0.1, driven by an open-loop asyncio
    client (aiohttp) on the same machine: requests leave on a fixed
    schedule whatever the replies do, and latency counts from the scheduled send time, so a
    server that falls behind cannot hide its queue (no coordinated omission). Three kinds of
    load: status reads of queued jobs, submissions, and both mixed (one submit to three reads).
    Each kind runs first at the target rate (200 req/s, 10 s); a trial passes with p99 < 100 ms
    and no errors. A miss is followed by shorter trials at 100, 50, 25 and 10 req/s until one
    passes: the highest rate the service sustains on this machine at that moment. A trial that
    falls 2 s behind stops, and the server is restarted (same database) before the next one, so
    one overload cannot spoil the figures after it. No worker runs,
    so engine work is excluded; a submission still does everything the API does (auth, rate
    limits, multipart parsing, header checks of a 160×188 PNG portrait and 1 s of espeak-ng
    speech as WAV, quota reservation, job row, storing both uploads, queue; the full decode is
    the worker's, see docs/jobs.md). `--kinds mixed --rates 100,200` runs just the mixed trials
    at those rates. Rate limits stay at their defaults (20 req/s per user,
    50 req/s per address): the load is spread over several hundred users and 32 loopback source
    addresses (127.0.0.2–33), as many clients would be, instead of raising the limits.
(b) Quota race. 20 submissions of one user released at once by a barrier: (b1) an admin-plan
    user (8 concurrent jobs) with 12 s of daily quota left and 2 s clips — the quota, not the
    concurrency limit, must stop it at exactly 6; (b2) a fresh basic user (600 s/day, 2 jobs).
(c) kill -9. Ten jobs submitted through the API; ten times a `mouthpiece worker` is started and
    SIGKILLed while rendering a job not killed before; then one worker finishes everything. Each
    job must end `succeeded` exactly once: one result file, one audit record with outcome
    succeeded, charged once and never refunded (uses the execution side's test helpers).

The machine's CPU is shared with other work: compare figures from one run, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.service.support: the execution side's worker helpers

SOURCE_ADDRESSES = [f"127.0.0.{i}" for i in range(2, 34)]
READY_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 15.0
P99_TARGET_MS = 100.0
MAX_LAG_S = 2.0  # a trial stops sending once this many seconds of requests await an answer
SEARCH_RPS = (100, 50, 25, 10)  # lower rates tried after a missed target
KILLS = 10


def log_line(message: str) -> None:
    """Progress on stderr (the tables go to stdout)."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------- server and accounts

@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    def access_log(self, since: float) -> list[dict]:
        """The server's own request records (route, status, duration_ms) logged after `since`."""
        entries = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("logger") == "mouthpiece.service.access" and entry.get("ts", 0) >= since:
                entries.append(entry)
        return entries

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


API_WORKERS = 1  # API processes of the server under test (--api-workers)


def start_server(settings, log_path: Path) -> Server:
    """`mouthpiece serve --workers 0 --api-workers API_WORKERS` for `settings` on a free loopback port."""
    from tests.service.servers import free_port
    from tests.service.support import settings_env

    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mouthpiece.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "0", *(["--api-workers", str(API_WORKERS)] if API_WORKERS != 1 else [])], cwd=ROOT, env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"mouthpiece serve exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return Server(url, process, log_path)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("mouthpiece serve did not become ready")


def create_users(service, count: int, plan: str, prefix: str) -> list[tuple[str, str]]:
    """`count` accounts made with the admin library call → [(user id, API key)]."""
    from mouthpiece.service.users import create_user

    made = []
    with service.sessions() as session:
        for i in range(count):
            user, key = create_user(session, f"{prefix}-{i}", plan)
            made.append((user.id, key))
        session.commit()
    return made


def sign_in(server: Server, key: str) -> str:
    response = httpx.post(server.url + "/v1/auth/token", headers={"Authorization": f"Bearer {key}"}, timeout=60)
    response.raise_for_status()
    return response.json()["access_token"]


def wait_until_idle(pid: int, timeout_s: float = 60.0) -> None:
    """Wait for a server to work off requests its clients gave up on (CPU use falls quiet)."""
    deadline = time.monotonic() + timeout_s
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if now - last < 0.05:
            return
        last = now


def make_clients(limit: int = 16) -> list:
    """One aiohttp session per loopback source address, each with its own connection pool.

    aiohttp rather than httpx here: it spends about a third of the client CPU per request,
    and the client shares the machine's two cores with the server it measures.
    """
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    # Idle connections are dropped before uvicorn's 5 s keep-alive ends, so none is reused as it closes.
    return [aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0), limit=limit,
                                                                 keepalive_timeout=3.0),
                                  timeout=timeout) for address in SOURCE_ADDRESSES]


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body encoded once (reused by every load request) and its content type."""
    request = httpx.Request("POST", "http://unused/", data=fields, files=files)
    return request.read(), request.headers["content-type"]


async def sign_in_all(clients, url: str, keys: list[str], concurrency: int = 8) -> list[str]:
    """Access tokens for `keys` (POST /v1/auth/token), a few at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, key: str) -> str:
        async with gate:
            async with clients[i % len(clients)].post(
                    url + "/v1/auth/token", headers={"Authorization": f"Bearer {key}"}) as response:
                response.raise_for_status()
                return (await response.json())["access_token"]

    return list(await asyncio.gather(*(one(i, key) for i, key in enumerate(keys))))


# ---------------------------------------------------------------------------- inputs

def small_inputs(tmp: Path) -> tuple[bytes, bytes, float]:
    """(PNG portrait 160×188, WAV of 1.0 s speech-like audio at 16 kHz, seconds) for load requests."""
    import matplotlib.cbook as cbook
    from PIL import Image

    photo = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    buffer = io.BytesIO()
    photo.resize((160, 188)).save(buffer, format="PNG")
    speech = tmp / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(speech), "Hello there, my friend."], check=True)
    return buffer.getvalue(), clip_wav(speech, 1.0), 1.0


def clip_wav(path: Path, seconds: float) -> bytes:
    """The first `seconds` of a WAV file (padded with silence if shorter), as WAV bytes."""
    with wave.open(str(path)) as src:
        params = src.getparams()
        frames = src.readframes(params.nframes)
    width = params.sampwidth * params.nchannels
    wanted = int(round(seconds * params.framerate)) * width
    frames = frames[:wanted].ljust(wanted, b"\0")
    out = io.BytesIO()
    with wave.open(out, "wb") as dst:
        dst.setparams(params)
        dst.writeframes(frames)
    return out.getvalue()


# ---------------------------------------------------------------------------- open-loop load

@dataclass
class Sample:
    kind: str
    status: int | str  # HTTP status, or the name of the transport error
    scheduled_s: float  # latency from the scheduled send time (includes any client-side lag)
    sent_s: float  # latency from the moment the request actually left
    end: float


@dataclass
class Phase:
    name: str
    rate: float
    duration_s: float
    samples: list[Sample] = field(default_factory=list)
    started: float = 0.0
    wall_start: float = 0.0
    stopped_after_s: float | None = None  # set when the server fell too far behind to go on
    server_cpu_s: float = 0.0  # CPU seconds the server process used during the phase
    client_cpu_s: float = 0.0  # … and this (client) process
    load_average: float = 0.0  # the machine's 1-minute load average at the end of the phase


async def open_loop(phase: Phase, call, kind_of) -> None:
    """Send `rate × duration` requests on a fixed schedule; `call(i)` → status, `kind_of(i)` → kind.

    Stops sending (and marks the phase) once more than MAX_LAG_S worth of requests are waiting
    for an answer: past that point the server is overloaded, and going on would only leave it a
    backlog that spoils the next phase.
    """
    loop = asyncio.get_running_loop()
    count = int(phase.rate * phase.duration_s)
    max_in_flight = int(phase.rate * MAX_LAG_S) + 8
    in_flight = 0
    phase.wall_start = time.time()
    phase.started = start = loop.time() + 0.05

    async def timed(i: int, scheduled: float) -> Sample:
        nonlocal in_flight
        in_flight += 1
        sent = loop.time()
        try:
            status = await call(i)
        except (OSError, asyncio.TimeoutError) as exc:  # aiohttp's errors derive from these
            status = type(exc).__name__
        finally:
            in_flight -= 1
        end = loop.time()
        return Sample(kind_of(i), status, end - scheduled, end - sent, end)

    tasks = []
    for i in range(count):
        scheduled = start + i / phase.rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if in_flight > max_in_flight:
            phase.stopped_after_s = round(loop.time() - start, 2)
            break
        tasks.append((i, scheduled, asyncio.create_task(timed(i, scheduled))))
    if phase.stopped_after_s is not None:  # an overloaded server: give up on what it has not answered
        await asyncio.wait([t for _, _, t in tasks], timeout=MAX_LAG_S)
        for _, _, task in tasks:
            task.cancel()
    done = await asyncio.gather(*(t for _, _, t in tasks), return_exceptions=True)
    end = loop.time()
    phase.samples = [r if isinstance(r, Sample) else Sample(kind_of(i), "abandoned", end - at, end - at, end)
                     for (i, at, _), r in zip(tasks, done)]


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU seconds used so far by process `pid` (all its threads) and, with
    `children`, its child processes (the API processes of `serve --api-workers N`)."""
    import psutil

    process = psutil.Process(pid)
    total = 0.0
    for each in [process, *(process.children(recursive=True) if children else ())]:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


ROUTES = {"submit": ("POST", "/v1/jobs"), "status": ("GET", "/v1/jobs/{job_id}")}
EXPECTED = {"submit": 202, "status": 200}


def summarize(phase: Phase, kind: str | None, server_log: list[dict]) -> dict:
    samples = [s for s in phase.samples if kind is None or s.kind == kind]
    errors: dict[str, int] = {}
    for s in samples:
        if s.status != EXPECTED[s.kind]:
            errors[str(s.status)] = errors.get(str(s.status), 0) + 1
    span = max(s.end for s in samples) - phase.started if samples else math.nan
    ms = [s.scheduled_s * 1000 for s in samples]
    wanted = [ROUTES[kind]] if kind else list(ROUTES.values())
    server_ms = [e["duration_ms"] for e in server_log if (e.get("method"), e.get("route")) in wanted]
    share = len(samples) / max(1, len(phase.samples))
    row = {
        "phase": phase.name, "kind": kind or "all", "target_rps": round(phase.rate * share, 1),
        "requests": len(samples), "achieved_rps": round(len(samples) / span, 1) if samples else 0.0,
        "stopped_after_s": phase.stopped_after_s,
        "errors": sum(errors.values()), "error_statuses": errors,
        "p50_ms": round(percentile(ms, 50), 1), "p90_ms": round(percentile(ms, 90), 1),
        "p95_ms": round(percentile(ms, 95), 1),
        "p99_ms": round(percentile(ms, 99), 1), "max_ms": round(max(ms), 1) if ms else math.nan,
        "p99_from_send_ms": round(percentile([s.sent_s * 1000 for s in samples], 99), 1),
        "server_p50_ms": round(percentile(server_ms, 50), 1),
        "server_p99_ms": round(percentile(server_ms, 99), 1), "server_requests": len(server_ms),
        # whole-phase CPU per request (the rows of one mixed phase share the figure)
        "server_cpu_ms_per_request": round(phase.server_cpu_s * 1000 / max(1, len(phase.samples)), 2),
        "client_cpu_ms_per_request": round(phase.client_cpu_s * 1000 / max(1, len(phase.samples)), 2),
        "load_average_1m": phase.load_average,
    }
    row["passed"] = (phase.stopped_after_s is None and row["errors"] == 0 and bool(samples)
                     and row["p99_ms"] < P99_TARGET_MS)
    return row


class LoadRun:
    """Accounts, tokens and jobs shared by the load trials.

    Status reads go to a fixed pool of queued jobs (as a client polls a job waiting its turn);
    submissions go round-robin to their own users, and the jobs a trial made are canceled after
    it (straight on the jobs table, outside the measurement) so no user reaches its plan's
    concurrent-jobs limit.
    """

    def __init__(self, server: Server, clients, pool_tokens: list[str], submit_tokens: list[str],
                 image: bytes, audio: bytes) -> None:
        self.server, self.clients = server, clients
        self.pool_tokens, self.submit_tokens = pool_tokens, submit_tokens
        self.body, self.content_type = multipart(
            {"min_resolution": "256", "seed": "7"},
            {"image": ("face.png", image, "image/png"), "audio": ("speech.wav", audio, "audio/wav")})
        self.submits = 0
        self.pool: list[tuple[str, str]] = []  # (queued job id, owner's token) for status reads
        self.created: list[str] = []  # jobs made by the current trial's submissions
        self.submit_user_ids: list[str] = []  # owners of submit_tokens (set by load_phases)

    def client(self, i: int):
        return self.clients[i % len(self.clients)]

    async def post_job(self, i: int, token: str) -> tuple[int, str | None]:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": self.content_type}
        async with self.client(i).post(self.server.url + "/v1/jobs", data=self.body, headers=headers) as response:
            if response.status == 202:
                return response.status, (await response.json())["id"]
            await response.read()
            return response.status, None

    async def fill_pool(self, jobs_per_user: int) -> None:
        for n in range(jobs_per_user):
            for u, token in enumerate(self.pool_tokens):
                status, job_id = await self.post_job(u + n, token)
                if job_id is None:
                    raise RuntimeError(f"pool submission refused with HTTP {status}")
                self.pool.append((job_id, token))

    async def submit(self, i: int) -> int:
        token = self.submit_tokens[self.submits % len(self.submit_tokens)]
        self.submits += 1
        status, job_id = await self.post_job(i, token)
        if job_id:
            self.created.append(job_id)
        return status

    async def status(self, i: int) -> int:
        job_id, token = self.pool[(i * 7919) % len(self.pool)]  # spread over the pool
        async with self.client(i).get(f"{self.server.url}/v1/jobs/{job_id}",
                                      headers={"Authorization": f"Bearer {token}"}) as response:
            await response.read()
            return response.status

    @staticmethod
    def mixed_kind(i: int) -> str:
        return "submit" if i % 4 == 0 else "status"

    async def mixed(self, i: int) -> int:
        return await (self.submit(i) if self.mixed_kind(i) == "submit" else self.status(i))

    def cancel_created(self, service) -> None:
        """Cancel the trial's jobs — also those of submissions the client gave up on (a server
        that fell behind may still have made them), so no user is left at its concurrency limit."""
        from sqlalchemy import select

        from mouthpiece.service import jobstore
        from mouthpiece.service.db import Job

        with service.sessions() as session:
            left = set(session.execute(select(Job.id).where(
                Job.user_id.in_(self.submit_user_ids), Job.status == "queued")).scalars()) \
                if self.submit_user_ids else set()
            session.rollback()
            for job_id in left | set(self.created):
                jobstore.cancel(session, job_id)
        self.created = []


async def run_trial(run: LoadRun, service, name: str, rate: float, seconds: float) -> list[dict]:
    """One open-loop phase of `name` (submit | status | mixed) at `rate` → summary rows."""
    calls = {"submit": (run.submit, lambda i: "submit"), "status": (run.status, lambda i: "status"),
             "mixed": (run.mixed, run.mixed_kind)}
    server = run.server
    phase = Phase(name, rate, seconds)
    log_line(f"{name}: {rate:g} req/s for {seconds:g} s")
    server_cpu, client_cpu = cpu_seconds(server.process.pid), cpu_seconds(os.getpid(), children=False)
    await open_loop(phase, *calls[name])
    phase.server_cpu_s = cpu_seconds(server.process.pid) - server_cpu
    phase.client_cpu_s = cpu_seconds(os.getpid(), children=False) - client_cpu
    phase.load_average = round(os.getloadavg()[0], 2)
    await asyncio.sleep(0.5)  # let the server flush its log lines
    log = [e for e in server.access_log(phase.wall_start) if e["ts"] <= time.time()]
    run.cancel_created(service)
    wait_until_idle(server.process.pid)
    if name == "mixed":
        return [summarize(phase, None, log), summarize(phase, "submit", log), summarize(phase, "status", log)]
    return [summarize(phase, name, log)]


async def load_phases(settings, service, args, image: bytes, audio: bytes, logs: Path) -> dict:
    """For each of submit, status and mixed: a trial at the target rate; if it misses, shorter
    trials at lower rates until one passes (the highest rate this machine sustains right now).

    A trial that fell behind or saw errors may leave the server a backlog (or worse), so the
    next trial gets a freshly started server on the same database (tokens and jobs stay valid).
    """
    servers = [start_server(settings, logs / "serve-load-0.log")]
    server = servers[0]
    from mouthpiece.service.plans import plan_named

    plan = plan_named("premium")
    pool_users, pool_jobs_per_user = 100, plan.concurrent_jobs - 1
    fixed_rates = [float(r) for r in args.rates.split(",")] if args.rates else []
    top = max([args.submit_rps, args.mixed_rps / 4] + [r if "submit" in args.kinds else r / 4 for r in fixed_rates])
    most_submits = top * args.seconds + 1
    submit_users = math.ceil(most_submits / (plan.concurrent_jobs - 1))  # a free slot is left for each
    started = time.perf_counter()
    accounts = create_users(service, pool_users + submit_users, plan.name, "load")
    clients = make_clients()
    try:
        log_line(f"signing in {len(accounts)} users")
        tokens = await sign_in_all(clients, server.url, [key for _, key in accounts])
        run = LoadRun(server, clients, tokens[:pool_users], tokens[pool_users:], image, audio)
        run.submit_user_ids = [user_id for user_id, _ in accounts[pool_users:]]
        log_line(f"queueing {pool_users * pool_jobs_per_user} jobs for the status reads")
        await run.fill_pool(pool_jobs_per_user)
        setup_s = time.perf_counter() - started
        for i in range(10):  # warm-up, not counted
            await run.submit(i)
            await run.status(i)
        run.cancel_created(service)
        rows = []
        targets = {"submit": args.submit_rps, "status": args.status_rps, "mixed": args.mixed_rps}
        for name in [k for k in ("status", "submit", "mixed") if k in args.kinds.split(",")]:
            target = targets[name]
            fixed = [float(r) for r in args.rates.split(",")] if args.rates else None
            for rate in fixed or [target] + [r for r in SEARCH_RPS if r < target]:
                trial = await run_trial(run, service, name, rate,
                                        args.seconds if fixed or rate == target else args.search_seconds)
                for row in trial:
                    row["server"] = len(servers) - 1
                rows += trial
                if trial[0]["passed"] and not fixed:
                    break
                if trial[0]["errors"] or trial[0]["stopped_after_s"] is not None:
                    log_line("restarting the server after a failed trial")
                    server.stop()
                    server = start_server(settings, logs / f"serve-load-{len(servers)}.log")
                    servers.append(server)
                    run.server = server
        return {"users": len(accounts), "plan": plan.name, "source_addresses": len(SOURCE_ADDRESSES),
                "queued_jobs_read": len(run.pool), "setup_s": round(setup_s, 1),
                "p99_target_ms": P99_TARGET_MS, "server_starts": len(servers), "rows": rows}
    finally:
        await asyncio.gather(*(c.close() for c in clients))
        server.stop()


# ---------------------------------------------------------------------------- quota race

def race(url: str, token: str, image: bytes, audio: bytes, count: int = 20) -> list[tuple[int, str]]:
    """`count` submissions released together by a barrier → [(status, error code or job id)]."""
    barrier = threading.Barrier(count)
    results: list[tuple[int, str]] = [None] * count  # type: ignore[list-item]

    def one(i: int) -> None:
        with httpx.Client(timeout=60, transport=httpx.HTTPTransport(local_address=SOURCE_ADDRESSES[i % 8])) as c:
            files = {"image": ("face.png", image, "image/png"), "audio": ("speech.wav", audio, "audio/wav")}
            request = c.build_request("POST", url + "/v1/jobs", files=files, data={"min_resolution": "256"},
                                      headers={"Authorization": f"Bearer {token}"})
            barrier.wait()
            response = c.send(request)
            body = response.json()
            results[i] = (response.status_code, body.get("id") or body.get("error", {}).get("code", "?"))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def quota_races(server: Server, service, image: bytes, audio_2s: bytes) -> list[dict]:
    from mouthpiece.service import quotas
    from mouthpiece.service.plans import plan_named

    rows = []
    for name, plan_name, left_s in (("b1 quota-bound (admin plan, 12 s left)", "admin", 12.0),
                                    ("b2 fresh basic user", "basic", None)):
        plan = plan_named(plan_name)
        (user_id, key), = create_users(service, 1, plan_name, f"race-{plan_name}")
        if left_s is not None:  # what the account already used today
            with service.sessions() as session:
                quotas.reserve(session, user_id, plan, plan.daily_video_s - left_s)
                session.commit()
        used_before = service.used_s(user_id)
        token = sign_in(server, key)
        results = race(server.url, token, image, audio_2s)
        accepted = [r for r in results if r[0] == 202]
        refusals: dict[str, int] = {}
        for status, code in results:
            if status != 202:
                refusals[f"{status} {code}"] = refusals.get(f"{status} {code}", 0) + 1
        used_after = service.used_s(user_id)
        allowed_by_quota = math.floor((plan.daily_video_s - used_before) / 2.0 + 1e-9)
        rows.append({
            "case": name, "plan": plan_name, "submissions": len(results), "accepted": len(accepted),
            "refusals": refusals, "clip_s": 2.0, "used_before_s": round(used_before, 3),
            "used_after_s": round(used_after, 3), "daily_limit_s": plan.daily_video_s,
            "allowed_by_quota": allowed_by_quota, "concurrent_limit": plan.concurrent_jobs,
            "within_quota": used_after <= plan.daily_video_s + 1e-6
            and math.isclose(used_after - used_before, 2.0 * len(accepted), abs_tol=1e-3),
            "accepted_equals_min_limit": len(accepted) == min(allowed_by_quota, plan.concurrent_jobs),
        })
    return rows


# ---------------------------------------------------------------------------- kill -9

def kill_cycles(server: Server, service, settings, tmp: Path, portrait: bytes, speech: bytes,
                deadline: float) -> dict:
    """Ten jobs via the API; a worker SIGKILLed mid-render ten times; then one finishes them all."""
    from mouthpiece.service.storage import job_prefix
    from tests.service.support import audit_records, start_worker, stop_worker, wait_until
    from tests.service.test_worker import group_alive
    from tests.service.test_worker_process import kill_mid_job

    accounts = create_users(service, KILLS, "basic", "kill")
    jobs: dict[str, str] = {}  # job id → user id
    for user_id, key in accounts:
        token = sign_in(server, key)
        files = {"image": ("face.png", portrait, "image/png"), "audio": ("speech.wav", speech, "audio/wav")}
        response = httpx.post(server.url + "/v1/jobs", files=files, timeout=60,
                              data={"min_resolution": "256", "full_frame": "false", "seed": "7"},
                              headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 202:
            raise SystemExit(f"kill bench: submission refused: {response.text}")
        jobs[response.json()["id"]] = user_id
    charged = {job_id: service.job(job_id).charged_s for job_id in jobs}

    started = time.perf_counter()
    killed: list[dict] = []
    remaining = list(jobs)
    for i in range(KILLS):
        if time.monotonic() > deadline:
            break
        job_id, engine_pid = kill_mid_job(service, settings, remaining, tmp / f"killed-{i}.log")
        killed.append({"job": job_id, "engine_pid": engine_pid})
        remaining.remove(job_id)
    kill_s = time.perf_counter() - started

    finisher = start_worker(settings, tmp / "finisher.log", concurrency=2)
    try:
        wait_until(lambda: all(service.job(j).status in ("succeeded", "failed", "canceled") for j in jobs),
                   max(60.0, deadline - time.monotonic()), "all jobs to finish")
    finally:
        finisher_rc = stop_worker(finisher)
    per_job = []
    for job_id, user_id in jobs.items():
        job = service.job(job_id)
        files = sorted(k.rsplit("/", 1)[1] for k in service.storage.list(job_prefix(user_id, job_id)))
        outcomes = [r["outcome"] for r in audit_records(settings, user_id)]
        used = service.used_s(user_id)
        per_job.append({
            "job": job_id, "status": job.status, "attempts": job.attempts,
            "results": files.count("result.mp4"), "audit_outcomes": outcomes,
            "charged_s": charged[job_id], "quota_used_s": round(used, 3), "refunded": job.refunded,
            "exactly_once": job.status == "succeeded" and files.count("result.mp4") == 1
            and outcomes == ["succeeded"] and math.isclose(used, charged[job_id]) and not job.refunded,
        })
    return {
        "kills": len(killed), "killed_distinct_jobs": len({k["job"] for k in killed}),
        "jobs": len(jobs), "finished_exactly_once": sum(j["exactly_once"] for j in per_job),
        "engine_children_left": sum(bool(group_alive(k["engine_pid"])) for k in killed),
        "kill_phase_s": round(kill_s, 1), "finisher_exit_code": finisher_rc,
        "killed": killed, "per_job": per_job,
    }


# ---------------------------------------------------------------------------- report

def print_tables(results: dict) -> None:
    for name in ("load", "quota_race", "kill9"):
        part = results.get(name)
        if isinstance(part, dict) and "error" in part:
            print(f"\n{name}: did not complete — {part['error']}")
            results = {**results, name: None}
    load = results.get("load")
    if load:
        print(f"\n(a) API under load — {load['users']} {load['plan']} users, {load['source_addresses']} source "
              f"addresses, default rate limits, no workers; latency from the scheduled send time; "
              f"pass = p99 < {load['p99_target_ms']:g} ms, no errors, never {MAX_LAG_S:g} s behind")
        head = f"{'phase':<8}{'kind':<8}{'target/s':>9}{'got/s':>8}{'reqs':>7}{'errors':>7}" \
               f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'srv p99':>9}{'srv cpu':>8}{'load':>6}  result"
        print(head)
        print("-" * len(head))
        for r in load["rows"]:
            verdict = "pass" if r["passed"] else (f"behind after {r['stopped_after_s']:g} s"
                                                  if r["stopped_after_s"] is not None else "miss")
            print(f"{r['phase']:<8}{r['kind']:<8}{r['target_rps']:>9}{r['achieved_rps']:>8}{r['requests']:>7}"
                  f"{r['errors']:>7}{r['p50_ms']:>9}{r['p95_ms']:>9}{r['p99_ms']:>9}{r['max_ms']:>9}"
                  f"{r['server_p99_ms']:>9}{r['server_cpu_ms_per_request']:>8}{r['load_average_1m']:>6}  {verdict}")
        print("(srv p99: the server's own timing of the request; srv cpu: server CPU ms per request; "
              "load: 1-minute load average after the trial)")
    for r in results.get("quota_race") or []:
        print(f"\n(b) {r['case']}: {r['accepted']}/{r['submissions']} accepted "
              f"(quota allows {r['allowed_by_quota']}, concurrency {r['concurrent_limit']}); "
              f"used {r['used_before_s']} → {r['used_after_s']} s of {r['daily_limit_s']:g}; "
              f"refusals {r['refusals']}; within quota: {r['within_quota']}")
    kills = results.get("kill9")
    if kills:
        print(f"\n(c) kill -9 mid-job: {kills['kills']} kills on {kills['killed_distinct_jobs']} distinct jobs "
              f"→ {kills['finished_exactly_once']}/{kills['jobs']} jobs finished exactly once; "
              f"engine children left: {kills['engine_children_left']}")
    print(f"\ntotal {results['total_s']} s")


@contextlib.contextmanager
def recorded(results: dict, name: str):
    """Run one part; if it breaks, keep its error in the results and go on with the next part."""
    try:
        yield
    except Exception as exc:  # a bench part that failed is reported, not hidden
        log_line(f"part {name} failed: {type(exc).__name__}: {exc}")
        results[name] = {"error": f"{type(exc).__name__}: {exc}"}





def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3-second load phases, no kill cycles")
    parser.add_argument("--parts", default="abc", help="which parts to run: any of a, b, c (default abc)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of a trial at the target rate")
    parser.add_argument("--search-seconds", type=float, default=4.0, help="length of a trial at a lower rate")
    parser.add_argument("--submit-rps", type=float, default=200.0)
    parser.add_argument("--status-rps", type=float, default=200.0)
    parser.add_argument("--mixed-rps", type=float, default=200.0)
    parser.add_argument("--rates", help="run every kind at exactly these rates (comma-separated, each "
                        "--seconds long) instead of the target-then-search sequence")
    parser.add_argument("--api-workers", type=int, default=1, help="API processes of the server (serve --api-workers)")
    parser.add_argument("--kinds", default="status,submit,mixed",
                        help="load trials to run, comma-separated (default status,submit,mixed)")
    parser.add_argument("--keep", action="store_true", help="keep the data folders and server logs")
    parser.add_argument("--budget-s", type=float, default=540.0, help="stop starting kill cycles after this")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench_service.json"))
    args = parser.parse_args()
    global API_WORKERS
    API_WORKERS = args.api_workers
    if args.quick:
        args.seconds, args.search_seconds, args.parts = 3.0, 2.0, args.parts.replace("c", "")

    import matplotlib.cbook as cbook

    from tests.service.support import Service, make_settings

    began = time.perf_counter()
    deadline = time.monotonic() + args.budget_s
    results: dict = {"cpu_count": os.cpu_count(), "args": vars(args),
                     "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    workspace = (contextlib.nullcontext(tempfile.mkdtemp(prefix="mouthpiece-bench-")) if args.keep
                 else tempfile.TemporaryDirectory(prefix="mouthpiece-bench-"))
    with workspace as folder:
        if args.keep:
            log_line(f"keeping data and server logs in {folder}")
        tmp = Path(folder)
        image, audio_1s, _ = small_inputs(tmp)
        audio_2s = clip_wav(tmp / "speech.wav", 2.0)

        if "a" in args.parts:
            settings = make_settings(tmp / "load")
            service = Service(settings)
            try:
                with recorded(results, "load"):
                    results["load"] = asyncio.run(load_phases(settings, service, args, image, audio_1s, tmp))
            finally:
                service.close()

        if "b" in args.parts:
            log_line("quota races")
            settings = make_settings(tmp / "race")
            service = Service(settings)
            server = start_server(settings, tmp / "serve-race.log")
            try:
                with recorded(results, "quota_race"):
                    results["quota_race"] = quota_races(server, service, image, audio_2s)
            finally:
                server.stop()
                service.close()

        if "c" in args.parts:
            log_line("kill -9 cycles")
            settings = make_settings(tmp / "kill", max_attempts=20)
            service = Service(settings)
            server = start_server(settings, tmp / "serve-kill.log")
            try:
                portrait = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()
                speech = (tmp / "speech.wav").read_bytes()
                with recorded(results, "kill9"):
                    results["kill9"] = kill_cycles(server, service, settings, tmp, portrait, speech, deadline)
            finally:
                server.stop()
                service.close()
    results["total_s"] = round(time.perf_counter() - began, 1)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print_tables(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    failed = [name for name, part in results.items() if isinstance(part, dict) and "error" in part]
    if failed:
        raise SystemExit(f"parts that did not complete: {', '.join(failed)}")


if __name__ == "__main__":
    main()
