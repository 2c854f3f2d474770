"""Canary routing: stable buckets, a monotone percentage, real installed checkpoints."""

from __future__ import annotations

import pytest

from mouthpiece.checkpoints import CheckpointError, Registry
from mouthpiece.service import jobstore, routing
from mouthpiece.service.db import Job, User, init_db, make_engine, new_id, session_factory
from tests.service.support import make_canary_bundle

USERS = [new_id() for _ in range(2000)]


def test_buckets_are_stable_and_spread():
    assert [routing.bucket(u) for u in USERS[:50]] == [routing.bucket(u) for u in USERS[:50]]
    counts = [0] * 100
    for user in USERS:
        counts[routing.bucket(user)] += 1
    assert all(c > 0 for c in counts[:100:10])  # every decile reached
    share_10 = sum(routing.route_for(u, {"ref": "x", "percent": 10}) == "canary" for u in USERS) / len(USERS)
    assert 0.07 < share_10 < 0.13


def test_raising_the_percentage_only_adds_users():
    previous: set[str] = set()
    for percent in (0, 1, 5, 10, 25, 50, 75, 99, 100):
        canary = {u for u in USERS if routing.route_for(u, {"ref": "x", "percent": percent}) == "canary"}
        assert previous <= canary
        previous = canary
    assert previous == set(USERS)
    assert all(routing.route_for(u, None) == "stable" for u in USERS[:100])


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    return make_canary_bundle(tmp_path_factory.mktemp("canary"))


@pytest.fixture
def registry(tmp_path, canary) -> Registry:
    bundle, trust = canary
    registry = Registry(tmp_path / "checkpoints", trust)
    assert routing.ensure_stable(registry) == "motion-audio2mouth@1.0.0"
    registry.install(bundle)
    return registry


@pytest.fixture
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'service.db'}")
    init_db(engine)
    yield session_factory(engine)
    engine.dispose()


def test_ensure_stable_keeps_an_existing_alias(registry):
    registry.set_alias("stable", "motion-audio2mouth@1.0.1-canary")
    assert routing.ensure_stable(registry) == "motion-audio2mouth@1.0.1-canary"


def test_choose_checkpoint_follows_the_canary_setting(registry, sessions):
    user_in = next(u for u in USERS if routing.bucket(u) < 30)
    user_out = next(u for u in USERS if routing.bucket(u) >= 30)
    with sessions() as session:
        assert routing.choose_checkpoint(session, registry, user_in)["route"] == "stable"
        with pytest.raises(CheckpointError):
            routing.set_canary(session, registry, "motion-audio2mouth@9.9.9", 30)
        with pytest.raises(ValueError):
            routing.set_canary(session, registry, "motion-audio2mouth@1.0.1-canary", 101)
        assert routing.set_canary(session, registry, "motion-audio2mouth@1.0.1-canary", 30) == {
            "ref": "motion-audio2mouth@1.0.1-canary", "percent": 30.0}
        chosen_in = routing.choose_checkpoint(session, registry, user_in)
        chosen_out = routing.choose_checkpoint(session, registry, user_out)
    assert (chosen_in["route"], chosen_in["ref"]) == ("canary", "motion-audio2mouth@1.0.1-canary")
    assert (chosen_out["route"], chosen_out["ref"]) == ("stable", "motion-audio2mouth@1.0.0")
    assert chosen_in["sha256"] != chosen_out["sha256"]
    assert routing.checkpoint_path(registry, chosen_in).name == "motion-audio2mouth@1.0.1-canary"
    with pytest.raises(CheckpointError):
        routing.checkpoint_path(registry, dict(chosen_in, sha256="0" * 64))


def test_recorded_checkpoint_is_kept_on_retry_after_the_canary_changes(registry, sessions):
    user = next(u for u in USERS if routing.bucket(u) < 50)
    with sessions() as session:
        session.add(User(id=user, name=user[:16], plan="basic"))
        session.flush()
        job = Job(user_id=user, params={}, inputs={})
        session.add(job)
        session.commit()
        routing.set_canary(session, registry, "motion-audio2mouth@1.0.1-canary", 50)
        claimed = jobstore.claim(session, job.id, "w1", 30.0, now=1000.0)
        first = routing.choose_checkpoint(session, registry, claimed.user_id)
        jobstore.set_checkpoint(session, job.id, "w1", first)
        routing.clear_canary(session)  # the canary is withdrawn while the job is in flight
        assert routing.choose_checkpoint(session, registry, user)["route"] == "stable"
        assert jobstore.reap(session, max_attempts=3, now=1100.0) == [job.id]
        retried = jobstore.claim(session, job.id, "w2", 30.0, now=1101.0)
    assert first["route"] == "canary" and retried.checkpoint == first


def test_a_canary_that_disappeared_falls_back_to_stable(registry, sessions, tmp_path):
    with sessions() as session:
        routing.set_canary(session, registry, "motion-audio2mouth@1.0.1-canary", 100)
        empty = Registry(tmp_path / "other", registry.trust_dir)
        routing.ensure_stable(empty)
        assert routing.choose_checkpoint(session, empty, new_id())["route"] == "stable"
