"""The queue carries job ids and hands out the highest priority first, on SQLite and on Redis."""

from __future__ import annotations

import pytest

from mouthpiece.service.config import Settings
from mouthpiece.service.db import new_id
from mouthpiece.service.queue import enqueue, make_huey, pending, take


@pytest.fixture(params=["sqlite", "redis"])
def settings(request, tmp_path) -> Settings:
    redis = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return Settings(data_dir=tmp_path, redis_url=redis)


def test_priority_first_then_arrival_order(settings):
    queue = make_huey(settings)
    basic_1, basic_2, premium, admin = (new_id() for _ in range(4))
    for job_id, priority in ((basic_1, 0), (premium, 5), (basic_2, 0), (admin, 9)):
        enqueue(queue, job_id, priority)
    assert pending(queue) == 4
    assert [take(queue) for _ in range(4)] == [admin, premium, basic_1, basic_2]
    assert take(queue) is None and pending(queue) == 0


def test_the_api_and_a_worker_see_the_same_queue(settings):
    """Each process builds its own huey from the same settings; a message is taken once."""
    api, worker_a, worker_b = make_huey(settings), make_huey(settings), make_huey(settings)
    job_id = new_id()
    enqueue(api, job_id, 0)
    assert {take(worker_a), take(worker_b)} == {job_id, None}


def test_a_forged_message_cannot_carry_code(settings):
    """Messages are JSON naming one job id; a pickle (or any other task) pushed into the queue is
    dropped on reading and never unpickled."""
    import pickle

    queue = make_huey(settings)
    queue.storage.enqueue(pickle.dumps(("os.system", "touch pwned")), 0)
    with pytest.raises(ValueError):
        take(queue)
    job_id = new_id()
    enqueue(queue, job_id, 0)
    assert take(queue) == job_id
