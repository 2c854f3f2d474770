"""Plans: what each kind of account may ask for and how much (enforced server-side)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    name: str
    max_duration_s: float  # longest video one job may produce
    max_resolution: int  # highest min_resolution a job may ask for
    daily_video_s: float  # seconds of video per UTC day (reserved at submit, refunded on failure/cancel)
    concurrent_jobs: int  # queued + running at once
    priority: int  # queue priority; higher runs first
    admin: bool = False


PLANS: dict[str, Plan] = {
    "basic": Plan("basic", max_duration_s=60, max_resolution=512, daily_video_s=600,
                  concurrent_jobs=2, priority=0),
    "premium": Plan("premium", max_duration_s=600, max_resolution=1024, daily_video_s=3 * 3600,
                    concurrent_jobs=4, priority=5),
    "admin": Plan("admin", max_duration_s=600, max_resolution=1024, daily_video_s=24 * 3600,
                  concurrent_jobs=8, priority=9, admin=True),
}


def plan_named(name: str) -> Plan:
    try:
        return PLANS[name]
    except KeyError:
        raise ValueError(f"unknown plan {name!r}; choose one of {', '.join(PLANS)}") from None
