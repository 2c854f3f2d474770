"""Identity: API keys (hashed, shown once), access JWTs, rotating refresh tokens, revocation, and
the OWASP broken-authentication cases (alg none, expired, tampered, wrong key → 401)."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import jwt
import pytest
from sqlalchemy import select, update

from mouthpiece.service.auth import REFRESH_RETRY_GRACE_S, signing_key
from mouthpiece.service.db import ApiKey, RefreshToken
from mouthpiece.service.users import revoke_key

from .conftest import bearer, new_account, sign_in


def _b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(client, headers) -> dict:
    token = headers["Authorization"].split()[1]
    return jwt.decode(token, options={"verify_signature": False})


def _assert_401(response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


def test_token_from_api_key_is_short_lived_hs256(client, user, settings):
    tokens = sign_in(client, user)
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] <= 900
    header = jwt.get_unverified_header(tokens["access_token"])
    claims = jwt.decode(tokens["access_token"], signing_key(settings.secret(), "jwt"), algorithms=["HS256"])
    assert header["alg"] == "HS256"
    assert {"sub", "plan", "jti", "exp", "iat"} <= set(claims)
    assert claims["sub"] == user.user_id and claims["plan"] == "basic"
    assert 0 < claims["exp"] - claims["iat"] <= 900
    me = client.get("/v1/me", headers=bearer(tokens))
    assert me.status_code == 200 and me.json()["name"] == user.name


def test_access_ttl_is_capped_at_15_minutes(tmp_path):
    from fastapi.testclient import TestClient

    from mouthpiece.service.app import create_app

    from .conftest import make_settings

    app = create_app(make_settings(tmp_path / "d", access_token_ttl_s=7200))
    with TestClient(app) as client:
        tokens = sign_in(client, new_account(app))
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert tokens["expires_in"] == 900 and claims["exp"] - claims["iat"] == 900


def test_api_key_is_stored_only_as_its_hash(client, user, services, settings):
    with services.sessions() as session:
        row = session.execute(select(ApiKey).where(ApiKey.user_id == user.user_id)).scalar_one()
    assert row.key_hash == hashlib.sha256(user.api_key.encode()).hexdigest()
    secret_part = user.api_key.split("_", 2)[2]  # mp_<prefix>_<secret>; the secret may hold "_"
    database = (settings.data_dir / "service.db").read_bytes()
    wal = settings.data_dir / "service.db-wal"
    stored = database + (wal.read_bytes() if wal.exists() else b"")
    assert secret_part.encode() not in stored


@pytest.mark.parametrize("key", ["", "mp_000000000000_" + "A" * 43, "not-a-key", "mp_x_y"])
def test_bad_api_keys_are_refused(client, user, key):
    _assert_401(client.post("/v1/auth/token", headers={"Authorization": f"Bearer {key}"}))


def test_wrong_secret_with_a_real_prefix_is_refused(client, user):
    prefix = user.api_key.split("_")[1]
    _assert_401(client.post("/v1/auth/token", headers={"Authorization": f"Bearer mp_{prefix}_{'B' * 43}"}))


def test_refresh_rotates_and_reuse_revokes_the_chain(client, user):
    first = sign_in(client, user)
    second = client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    third = client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}).json()
    assert client.get("/v1/me", headers=bearer(third)).status_code == 200

    # an attacker replays the first (already used) refresh token: the whole chain dies
    _assert_401(client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}))
    _assert_401(client.post("/v1/auth/refresh", json={"refresh_token": third["refresh_token"]}))
    for tokens in (first, second, third):
        _assert_401(client.get("/v1/me", headers=bearer(tokens)))
    # a fresh sign-in with the API key still works and starts a new chain
    assert client.get("/v1/me", headers=bearer(sign_in(client, user))).status_code == 200


def test_a_retry_after_a_lost_answer_gets_a_pair_a_late_replay_revokes(client, user, services):
    """A page reloaded while its refresh request was in flight sends the token it still has:
    within the grace period, before the successor is spent, that is a retry, not a theft."""
    first = sign_in(client, user)
    lost = client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert lost.status_code == 200  # the answer the reloading page never read
    retry = client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert retry.status_code == 200, retry.text
    retry = retry.json()
    assert client.get("/v1/me", headers=bearer(retry)).status_code == 200
    nxt = client.post("/v1/auth/refresh", json={"refresh_token": retry["refresh_token"]})
    assert nxt.status_code == 200

    # the same token once the grace period is over: a replay, the whole sign-in dies
    with services.sessions() as session:
        session.execute(update(RefreshToken).where(RefreshToken.used_at.is_not(None))
                        .values(used_at=RefreshToken.used_at - REFRESH_RETRY_GRACE_S - 1))
        session.commit()
    _assert_401(client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}))
    _assert_401(client.get("/v1/me", headers=bearer(nxt.json())))


def test_refresh_tokens_are_stored_hashed(client, user, services):
    tokens = sign_in(client, user)
    with services.sessions() as session:
        hashes = set(session.execute(select(RefreshToken.token_hash)).scalars())
    assert hashlib.sha256(tokens["refresh_token"].encode()).hexdigest() in hashes
    assert tokens["refresh_token"] not in hashes


def test_expired_refresh_token_is_refused(client, user, services):
    tokens = sign_in(client, user)
    with services.sessions() as session:
        session.execute(update(RefreshToken).values(expires_at=time.time() - 1))
        session.commit()
    _assert_401(client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}))


@pytest.mark.parametrize("body", [{}, {"refresh_token": ""}, {"refresh_token": "x", "extra": 1}])
def test_malformed_refresh_requests_get_json_422(client, body):
    response = client.post("/v1/auth/refresh", json=body)
    assert response.status_code == 422
    assert set(response.json()["error"]) == {"code", "message"}


def test_revoking_the_key_kills_its_access_and_refresh_tokens(client, user, services):
    tokens = sign_in(client, user)
    with services.sessions() as session:
        revoke_key(session, user.api_key)
        session.commit()
    _assert_401(client.get("/v1/me", headers=bearer(tokens)))
    _assert_401(client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}))
    _assert_401(client.post("/v1/auth/token", headers={"Authorization": f"Bearer {user.api_key}"}))


def test_revocation_ends_a_token_whose_signature_check_is_cached(client, user, services):
    """Status reads reuse verified signatures, never a verdict on revocation: a key revoked after
    a token was used (and cached) ends it on the next request, on every route."""
    tokens = sign_in(client, user)
    assert client.get("/v1/me", headers=bearer(tokens)).status_code == 200
    assert client.get("/v1/jobs/" + "0" * 32, headers=bearer(tokens)).status_code == 404
    assert services.verified_tokens.get(tokens["access_token"]) is not None  # cached now
    with services.sessions() as session:
        revoke_key(session, user.api_key)
        session.commit()
    _assert_401(client.get("/v1/jobs/" + "0" * 32, headers=bearer(tokens)))
    _assert_401(client.get("/v1/me", headers=bearer(tokens)))


def test_a_cached_token_still_expires(tmp_path):
    from fastapi.testclient import TestClient

    from mouthpiece.service.app import create_app

    from .conftest import make_settings, new_account

    app = create_app(make_settings(tmp_path / "data", access_token_ttl_s=2))
    with TestClient(app) as client:
        tokens = sign_in(client, new_account(app))
        assert client.get("/v1/me", headers=bearer(tokens)).status_code == 200
        assert app.state.services.verified_tokens.get(tokens["access_token"]) is not None
        time.sleep(2.1)
        response = client.get("/v1/me", headers=bearer(tokens))
        _assert_401(response)
        assert "expired" in response.json()["error"]["message"]


def test_alg_none_token_is_refused(client, user, user_headers):
    claims = _claims(client, user_headers)
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    _assert_401(client.get("/v1/me", headers={"Authorization": f"Bearer {unsigned}"}))


def test_expired_token_is_refused(client, user, user_headers, settings):
    claims = _claims(client, user_headers)
    claims.update(iat=int(time.time()) - 2000, exp=int(time.time()) - 1000)
    expired = jwt.encode(claims, signing_key(settings.secret(), "jwt"), algorithm="HS256")
    response = client.get("/v1/me", headers={"Authorization": f"Bearer {expired}"})
    _assert_401(response)
    assert "expired" in response.json()["error"]["message"]


def test_tampered_token_is_refused(client, app, user, user_headers):
    other = new_account(app, "admin")
    header, payload, signature = user_headers["Authorization"].split()[1].split(".")
    claims = _claims(client, user_headers)
    claims.update(sub=other.user_id, plan="admin")
    forged = f"{header}.{_b64(claims)}.{signature}"
    _assert_401(client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"}))
    _assert_401(client.get("/v1/admin/users", headers={"Authorization": f"Bearer {forged}"}))


@pytest.mark.parametrize("key, algorithm", [(b"wrong-key-0123456789abcdef0123456", "HS256"),
                                            ("api-test-secret-0123456789", "HS256"),  # the raw secret, not the JWT key
                                            (None, "HS512")])
def test_token_signed_with_another_key_or_algorithm_is_refused(client, user, user_headers, settings,
                                                               key, algorithm):
    claims = _claims(client, user_headers)
    token = jwt.encode(claims, key or signing_key(settings.secret(), "jwt"), algorithm=algorithm)
    _assert_401(client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}))


def test_token_without_required_claims_is_refused(client, user, user_headers, settings):
    claims = _claims(client, user_headers)
    for missing in ("exp", "sub", "kid", "fam", "jti"):
        partial = {k: v for k, v in claims.items() if k != missing}
        token = jwt.encode(partial, signing_key(settings.secret(), "jwt"), algorithm="HS256")
        _assert_401(client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}))


def test_api_key_is_not_an_access_token(client, user):
    _assert_401(client.get("/v1/me", headers={"Authorization": f"Bearer {user.api_key}"}))
    _assert_401(client.get("/v1/me"))
    _assert_401(client.get("/v1/me", headers={"Authorization": "Basic dXNlcjpwYXNz"}))
