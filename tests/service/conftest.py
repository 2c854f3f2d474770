"""Fixtures for every service test: real PostgreSQL, Redis and SeaweedFS S3 servers on loopback
(started once per session, on first use) — see servers.py for what each one yields."""

from tests.service.servers import (postgres_server, postgres_url, redis_server, redis_url,  # noqa: F401
                                   s3_bucket, s3_server)
