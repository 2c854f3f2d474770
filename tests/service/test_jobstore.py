"""The job lifecycle on SQLite and on a real PostgreSQL: claims, leases, commits, refunds."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from mouthpiece.service import jobstore, quotas
from mouthpiece.service.db import Job, User, db_now, init_db, make_engine, new_id, session_factory
from mouthpiece.service.plans import plan_named

LEASE_S = 30.0


@pytest.fixture(params=["sqlite", "postgres"])
def sessions(request, tmp_path):
    url = (f"sqlite:///{tmp_path / 'service.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    engine = make_engine(url)
    init_db(engine)
    yield session_factory(engine)
    engine.dispose()


def new_job(sessions, *, charged_s: float = 10.0) -> tuple[str, str]:
    """A queued job of a new basic user with `charged_s` reserved; returns (user id, job id)."""
    with sessions() as session:
        user = User(name=new_id(), plan="basic")
        session.add(user)
        session.flush()
        day = quotas.reserve(session, user.id, plan_named("basic"), charged_s)
        job = Job(user_id=user.id, params={}, inputs={}, charged_s=charged_s, charged_day=day)
        session.add(job)
        session.commit()
        return user.id, job.id


def get(sessions, job_id: str) -> Job:
    with sessions() as session:
        return session.get(Job, job_id)


def used(sessions, user_id: str) -> float:
    with sessions() as session:
        return quotas.used_seconds(session, user_id)


def test_claim_heartbeat_succeed(sessions):
    user_id, job_id = new_job(sessions)
    with sessions() as session:
        job = jobstore.claim(session, job_id, "w1", LEASE_S)
        assert job.status == "running" and job.attempts == 1 and job.lease_owner == "w1"
        assert jobstore.heartbeat(session, job_id, "w1", LEASE_S, 0.4)
        assert not jobstore.heartbeat(session, job_id, "w2", LEASE_S, 0.9)  # not the owner
        assert jobstore.claim(session, job_id, "w2", LEASE_S) is None  # live lease
        assert jobstore.succeed(session, job_id, "w1", {"video_key": "k"})
        assert not jobstore.succeed(session, job_id, "w1", {"video_key": "again"})
        assert jobstore.claim(session, job_id, "w3", LEASE_S, now=1e12) is None  # finished: never re-run
        assert not jobstore.fail(session, job_id, "w1", "internal", "late")
    job = get(sessions, job_id)
    assert (job.status, job.result, job.progress, job.lease_owner) == ("succeeded", {"video_key": "k"}, 1.0, None)
    assert used(sessions, user_id) == 10.0 and not job.refunded


@pytest.mark.parametrize("claimers", [2, 8])
def test_racing_claimers_one_wins(sessions, claimers):
    for _round in range(10):
        _, job_id = new_job(sessions)
        barrier = threading.Barrier(claimers)
        won = []

        def try_claim(name: str) -> None:
            with sessions() as session:
                barrier.wait()
                if jobstore.claim(session, job_id, name, LEASE_S) is not None:
                    won.append(name)

        threads = [threading.Thread(target=try_claim, args=(f"w{i}",)) for i in range(claimers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(won) == 1
        job = get(sessions, job_id)
        assert job.lease_owner == won[0] and job.attempts == 1


def test_racing_reclaims_of_an_expired_lease_one_wins(sessions):
    _, job_id = new_job(sessions)
    with sessions() as session:
        jobstore.claim(session, job_id, "dead", LEASE_S, now=1000.0)
    barrier, won = threading.Barrier(6), []

    def reclaim(name: str) -> None:
        with sessions() as session:
            barrier.wait()
            if jobstore.claim(session, job_id, name, LEASE_S, now=1000.0 + LEASE_S + 1) is not None:
                won.append(name)

    threads = [threading.Thread(target=reclaim, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and get(sessions, job_id).attempts == 2


def test_reap_requeues_expired_leases_and_keeps_the_checkpoint(sessions):
    _, job_id = new_job(sessions)
    recorded = {"ref": "motion@1.0.0", "sha256": "ab" * 32, "route": "canary"}
    with sessions() as session:
        jobstore.claim(session, job_id, "dead", LEASE_S, now=1000.0)
        assert jobstore.set_checkpoint(session, job_id, "dead", recorded)
        assert jobstore.reap(session, max_attempts=3, now=1000.0 + LEASE_S - 1) == []  # lease still live
        assert jobstore.reap(session, max_attempts=3, now=1000.0 + LEASE_S + 1) == [job_id]
        assert not jobstore.heartbeat(session, job_id, "dead", LEASE_S, 0.5)  # the old owner lost it
        assert not jobstore.succeed(session, job_id, "dead", {})
        job = jobstore.claim(session, job_id, "w2", LEASE_S, now=1000.0 + LEASE_S + 2)
    assert job.attempts == 2 and job.checkpoint == recorded and job.status == "running"


def test_reap_gives_up_after_max_attempts_and_refunds_once(sessions):
    user_id, job_id = new_job(sessions, charged_s=12.0)
    t = 1000.0
    with sessions() as session:
        for attempt in range(3):
            assert jobstore.claim(session, job_id, f"w{attempt}", LEASE_S, max_attempts=3, now=t) is not None
            t += LEASE_S + 1
            expected = [job_id] if attempt < 2 else []
            assert jobstore.reap(session, max_attempts=3, now=t) == expected
        assert jobstore.claim(session, job_id, "w9", LEASE_S, max_attempts=3, now=t) is None
        assert jobstore.reap(session, max_attempts=3, now=t + 100) == []
    job = get(sessions, job_id)
    assert (job.status, job.error_code, job.attempts, job.refunded) == ("failed", "worker_lost", 3, True)
    assert used(sessions, user_id) == 0.0


def test_fail_refunds_exactly_once(sessions):
    user_id, job_id = new_job(sessions, charged_s=7.0)
    _, other_id = new_job(sessions, charged_s=5.0)
    with sessions() as session:
        jobstore.claim(session, job_id, "w1", LEASE_S)
        assert jobstore.fail(session, job_id, "w1", "bad_input", "no face found")
        assert not jobstore.fail(session, job_id, "w1", "bad_input", "no face found")
        assert not quotas.refund(session, job_id)
        session.commit()
    job = get(sessions, job_id)
    assert (job.status, job.error_code, job.error_message) == ("failed", "bad_input", "no face found")
    assert used(sessions, user_id) == 0.0
    assert get(sessions, other_id).status == "queued"


def test_cancel(sessions):
    user_id, queued_id = new_job(sessions, charged_s=4.0)
    with sessions() as session:
        assert jobstore.cancel(session, queued_id) == "canceled"
        assert jobstore.cancel(session, queued_id) == "canceled"  # again: nothing changes
        assert jobstore.claim(session, queued_id, "w1", LEASE_S) is None
    assert used(sessions, user_id) == 0.0

    user_id, running_id = new_job(sessions, charged_s=4.0)
    with sessions() as session:
        jobstore.claim(session, running_id, "w1", LEASE_S)
        assert jobstore.cancel(session, running_id) == "canceling"
        assert not jobstore.heartbeat(session, running_id, "w1", LEASE_S, 0.5)  # tells the worker to stop
        assert used(sessions, user_id) == 4.0  # refunded when the worker has stopped it
        assert jobstore.finish_canceled(session, running_id, "w1")
        assert jobstore.cancel(session, running_id) == "canceled"
        with pytest.raises(LookupError):
            jobstore.cancel(session, new_id())
    assert used(sessions, user_id) == 0.0 and get(sessions, running_id).status == "canceled"


def test_cancel_of_a_job_whose_worker_died_is_finished_by_the_reaper(sessions):
    user_id, job_id = new_job(sessions, charged_s=3.0)
    with sessions() as session:
        jobstore.claim(session, job_id, "dead", LEASE_S, now=1000.0)
        assert jobstore.cancel(session, job_id) == "canceling"
        assert jobstore.reap(session, max_attempts=3, now=1000.0 + LEASE_S + 1) == []
    assert get(sessions, job_id).status == "canceled" and used(sessions, user_id) == 0.0


def test_release_hands_the_job_back_without_counting_the_attempt(sessions):
    _, job_id = new_job(sessions)
    with sessions() as session:
        jobstore.claim(session, job_id, "w1", LEASE_S)
        assert jobstore.release(session, job_id, "w1")
        assert not jobstore.release(session, job_id, "w1")
    job = get(sessions, job_id)
    assert (job.status, job.attempts, job.lease_owner) == ("queued", 0, None)


def test_lost_queued_lists_old_queued_jobs_by_priority(sessions):
    _, old = new_job(sessions)
    _, running = new_job(sessions)
    with sessions() as session:
        jobstore.claim(session, running, "w1", LEASE_S)
        session.get(Job, old).priority = 5
        session.commit()
        assert jobstore.lost_queued(session, older_than=0.0) == []
        assert jobstore.lost_queued(session, older_than=1e12) == [old]
        assert jobstore.priorities(session, [old, running]) == {old: 5, running: 0}


def test_success_settles_an_estimated_charge_once(sessions):
    """A text job reserved 10 s on an estimate; its speech made 6.5 s: 3.5 s go back, once —
    even when the first attempt's worker died and a retry commits (the zombie cannot)."""
    user_id, job_id = new_job(sessions, charged_s=10.0)
    with sessions() as session:
        jobstore.claim(session, job_id, "dead", LEASE_S, now=1000.0)
        assert jobstore.reap(session, max_attempts=3, now=1000.0 + LEASE_S + 1) == [job_id]
        jobstore.claim(session, job_id, "w2", LEASE_S, now=1000.0 + LEASE_S + 2)
        assert jobstore.succeed(session, job_id, "w2", {"video_key": "k"}, actual_s=6.5)
        assert not jobstore.succeed(session, job_id, "w2", {"video_key": "k"}, actual_s=6.5)
        assert not jobstore.succeed(session, job_id, "dead", {"video_key": "k"}, actual_s=1.0)
        assert not jobstore.fail(session, job_id, "dead", "internal", "late")
    job = get(sessions, job_id)
    assert (job.status, job.charged_s, job.refunded) == ("succeeded", 6.5, False)
    assert used(sessions, user_id) == pytest.approx(6.5)


def test_a_shortfall_is_charged_up_to_the_daily_limit(sessions):
    user_id, job_id = new_job(sessions, charged_s=10.0)
    with sessions() as session:
        jobstore.claim(session, job_id, "w1", LEASE_S)
        assert jobstore.succeed(session, job_id, "w1", {}, actual_s=13.25)
    assert get(sessions, job_id).charged_s == 13.25 and used(sessions, user_id) == pytest.approx(13.25)

    user_id, job_id = new_job(sessions, charged_s=10.0)
    limit = plan_named("basic").daily_video_s
    with sessions() as session:  # other jobs used the day's quota up to 2 s short of the limit
        assert quotas.reserve(session, user_id, plan_named("basic"), limit - 12.0)
        session.commit()
        jobstore.claim(session, job_id, "w1", LEASE_S)
        assert jobstore.succeed(session, job_id, "w1", {}, actual_s=15.0)
    assert get(sessions, job_id).charged_s == 12.0  # 2 s of the 5 s shortfall fit under the limit
    assert used(sessions, user_id) == pytest.approx(limit)


def test_settling_races_with_reservations_without_overspending(sessions):
    """A settlement's shortfall and 10 racing reservations of the same user: never over the limit."""
    plan = plan_named("basic")
    user_id, job_id = new_job(sessions, charged_s=10.0)
    with sessions() as session:
        assert quotas.reserve(session, user_id, plan, plan.daily_video_s - 60.0)
        session.commit()
        jobstore.claim(session, job_id, "w1", LEASE_S)
    barrier, errors = threading.Barrier(11), []

    def reserve() -> None:
        with sessions() as session:
            barrier.wait()
            try:
                quotas.reserve(session, user_id, plan, 10.0)
                session.commit()
            except quotas.QuotaExceeded:
                session.rollback()
            except Exception as exc:  # a lock error would show here
                errors.append(exc)

    def settle() -> None:
        with sessions() as session:
            barrier.wait()
            jobstore.succeed(session, job_id, "w1", {}, actual_s=40.0)

    threads = [threading.Thread(target=reserve) for _ in range(10)] + [threading.Thread(target=settle)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert used(sessions, user_id) <= plan.daily_video_s + 1e-6
    assert get(sessions, job_id).status == "succeeded"


def test_leases_run_on_the_database_clock_not_the_workers(sessions, monkeypatch):
    """Workers on hosts whose clocks are an hour off either way: a live lease is never stolen,
    an expired one is still reaped — expiry is computed by the database in each statement."""
    real_time = time.time
    with sessions() as session:
        db_time = session.execute(select(db_now())).scalar_one()
    assert abs(db_time - real_time()) < 5  # the database's clock reads as epoch seconds

    _, job_id = new_job(sessions)
    with sessions() as session:
        monkeypatch.setattr(time, "time", lambda: real_time() - 3600)  # a worker running an hour behind
        assert jobstore.claim(session, job_id, "slow-clock", LEASE_S) is not None
        monkeypatch.setattr(time, "time", lambda: real_time() + 3600)  # a reaper running an hour ahead
        assert jobstore.reap(session, max_attempts=3) == []
        assert jobstore.claim(session, job_id, "fast-clock", LEASE_S) is None
        assert jobstore.heartbeat(session, job_id, "slow-clock", LEASE_S, 0.5)
    job = get(sessions, job_id)
    assert abs(job.lease_expires_at - (real_time() + LEASE_S)) < 5 and abs(job.heartbeat_at - real_time()) < 5

    monkeypatch.undo()  # (jobs get `created_at` from the API host's clock)
    _, short_id = new_job(sessions)  # a lease of 0.3 s on the database's clock does expire
    with sessions() as session:
        assert jobstore.claim(session, short_id, "gone", 0.3) is not None
        assert jobstore.reap(session, max_attempts=3) == []
        time.sleep(0.5)
        assert jobstore.reap(session, max_attempts=3) == [short_id]
        assert jobstore.lost_queued(session, min_age_s=3600) == []
        assert short_id in jobstore.lost_queued(session, min_age_s=0.0)
