"""Admin routes: 403 for user tokens (OWASP API5), users and key revocation, canary routing."""

from __future__ import annotations

import pytest

from mouthpiece.checkpoints import Registry
from mouthpiece.service import routing

from .conftest import bearer, sign_in

ADMIN_ROUTES = [("GET", "/v1/admin/users", None), ("POST", "/v1/admin/users", {"name": "x", "plan": "admin"}),
                ("POST", "/v1/admin/keys/0123456789ab/revoke", None), ("GET", "/v1/admin/canary", None),
                ("PUT", "/v1/admin/canary", {"ref": "stable", "percent": 50})]


@pytest.mark.parametrize("method, path, body", ADMIN_ROUTES)
def test_admin_routes_refuse_user_tokens(client, user_headers, method, path, body):
    response = client.request(method, path, headers=user_headers, json=body)
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("method, path, body", ADMIN_ROUTES)
def test_admin_routes_refuse_anonymous_calls(client, method, path, body):
    assert client.request(method, path, json=body).status_code == 401


def test_premium_is_not_admin(client, app):
    from .conftest import new_account

    headers = bearer(sign_in(client, new_account(app, "premium")))
    assert client.get("/v1/admin/users", headers=headers).status_code == 403


def test_admin_creates_a_user_whose_key_works_once_shown(client, admin_headers):
    created = client.post("/v1/admin/users", headers=admin_headers, json={"name": "carol", "plan": "premium"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["user"]["plan"] == "premium" and body["api_key"].startswith("mp_")
    tokens = client.post("/v1/auth/token", headers={"Authorization": f"Bearer {body['api_key']}"}).json()
    assert client.get("/v1/me", headers=bearer(tokens)).json()["name"] == "carol"
    listing = client.get("/v1/admin/users", headers=admin_headers).json()["users"]
    carol = next(u for u in listing if u["name"] == "carol")
    assert carol["keys"][0]["prefix"] == body["api_key"].split("_")[1]
    assert body["api_key"] not in str(listing)  # only the prefix is ever shown again
    duplicate = client.post("/v1/admin/users", headers=admin_headers, json={"name": "carol", "plan": "basic"})
    assert duplicate.status_code == 409


def test_admin_revokes_a_key_and_its_tokens_die(client, admin_headers, user):
    tokens = sign_in(client, user)
    prefix = user.api_key.split("_")[1]
    revoked = client.post(f"/v1/admin/keys/{prefix}/revoke", headers=admin_headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert client.get("/v1/me", headers=bearer(tokens)).status_code == 401
    assert client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    assert client.post("/v1/admin/keys/ffffffffffff/revoke", headers=admin_headers).status_code == 404


def test_canary_is_set_to_an_installed_checkpoint_only(client, admin_headers, settings):
    assert client.get("/v1/admin/canary", headers=admin_headers).json() == {"ref": None, "percent": 0}
    unknown = client.put("/v1/admin/canary", headers=admin_headers, json={"ref": "nope@9.9.9", "percent": 10})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_checkpoint"
    stable = routing.ensure_stable(Registry(settings.registry_root, settings.trust_dir))
    response = client.put("/v1/admin/canary", headers=admin_headers, json={"ref": "stable", "percent": 25})
    assert response.status_code == 200 and response.json() == {"ref": stable, "percent": 25}
    assert client.get("/v1/admin/canary", headers=admin_headers).json() == {"ref": stable, "percent": 25}
    off = client.put("/v1/admin/canary", headers=admin_headers, json={"ref": "stable", "percent": 0})
    assert off.json() == {"ref": None, "percent": 0}


@pytest.mark.parametrize("body", [{"ref": "stable", "percent": 101}, {"ref": "../../etc", "percent": 5},
                                  {"ref": "stable"}, {"ref": "stable", "percent": 5, "route": "x"}])
def test_bad_canary_requests_are_422(client, admin_headers, body):
    response = client.put("/v1/admin/canary", headers=admin_headers, json=body)
    assert response.status_code == 422 and set(response.json()["error"]) == {"code", "message"}
