"""Sign-in, sessions, tokens and bad input over HTTP, on a real server.

Refresh rotation and reuse detection, sign-out, lockout and rate limits
(429 with Retry-After), expired, tampered and foreign tokens, revoked API
keys, disabled users; and every refusal in the one error shape, never a
500 and never a hint whether a user exists.
"""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jwt

from backend.services.crypto import Keys
from tests.api.conftest import Clients, sign_in
from tests.conftest import PASSWORD, Backend

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The error object of a refusal, after checking its status, code and shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["details"], dict)
    return error


def _login(client: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    return client.post(LOGIN, json={"username": username, "password": password})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _me(client: httpx.Client, token: str) -> httpx.Response:
    return client.get("/api/v1/me", headers=_bearer(token))


def _retry_after(response: httpx.Response) -> int:
    value = int(response.headers["retry-after"])
    assert value >= 1
    return value


def _new_user(admin: httpx.Client, username: str, role: str = "operator") -> int:
    response = admin.post(
        "/api/v1/users", json={"username": username, "password": PASSWORD, "role": role}
    )
    assert response.status_code == 201, response.text
    user_id: int = response.json()["id"]
    return user_id


# -- sessions ---------------------------------------------------------------------


def test_refresh_rotates_and_a_reused_token_ends_the_session(clients: Clients) -> None:
    http = clients.anonymous
    first = _login(http, "otto").json()
    assert first["token_type"] == "bearer"
    assert first["expires_in"] > 0

    second = http.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert rotated["access_token"] != first["access_token"]
    assert _me(http, rotated["access_token"]).json()["username"] == "otto"

    # The old refresh token presented again: a stolen copy. The whole session ends.
    _error(
        http.post(REFRESH, json={"refresh_token": first["refresh_token"]}), 401, "unauthenticated"
    )
    _error(
        http.post(REFRESH, json={"refresh_token": rotated["refresh_token"]}), 401, "unauthenticated"
    )
    _error(_me(http, rotated["access_token"]), 401, "unauthenticated")
    _error(_me(http, first["access_token"]), 401, "unauthenticated")

    # Other sessions of the same user are untouched.
    assert clients.operator.get("/api/v1/me").status_code == 200
    # A refresh token nobody issued.
    _error(http.post(REFRESH, json={"refresh_token": "x" * 43}), 401, "unauthenticated")


def test_logout_revokes_the_session(clients: Clients) -> None:
    http = clients.anonymous
    pair = _login(http, "vera").json()
    assert _me(http, pair["access_token"]).status_code == 200

    response = http.post("/api/v1/auth/logout", headers=_bearer(pair["access_token"]))
    assert response.status_code == 204
    assert response.content == b""

    error = _error(_me(http, pair["access_token"]), 401, "unauthenticated")
    assert "sign in" in error["message"]
    _error(
        http.post(REFRESH, json={"refresh_token": pair["refresh_token"]}), 401, "unauthenticated"
    )
    _error(
        http.post("/api/v1/auth/logout", headers=_bearer(pair["access_token"])),
        401,
        "unauthenticated",
    )
    # Only that session: the fixture's own sign-in of the same user still works.
    assert clients.viewer.get("/api/v1/me").status_code == 200


# -- sign-in failures -------------------------------------------------------------


def test_failures_do_not_reveal_whether_a_user_exists_and_lock_after_a_burst(
    clients: Clients,
) -> None:
    http = clients.anonymous
    threshold = clients.admin.get("/api/v1/settings/auth.lockout_threshold").json()["value"]
    wrong = [_login(http, "otto", "not the password") for _ in range(threshold)]
    unknown = [_login(http, "nobody-here", "not the password") for _ in range(threshold)]
    for response in (*wrong, *unknown):
        _error(response, 401, "unauthenticated")
    assert {r.content for r in wrong} == {r.content for r in unknown}
    assert len({r.content for r in wrong}) == 1
    assert wrong[0].headers["www-authenticate"] == "Bearer"

    # Locked now, even with the right password; an unknown name locks just the same.
    locked = _login(http, "otto")
    error = _error(locked, 429, "rate_limited")
    assert _retry_after(locked) > 60
    ghost = _login(http, "nobody-here")
    _error(ghost, 429, "rate_limited")
    assert ghost.json()["error"]["message"] == error["message"]
    assert ghost.headers["retry-after"] == locked.headers["retry-after"]
    # A disabled account answers exactly like a wrong password.
    dora = _new_user(clients.admin, "dora")
    assert clients.admin.patch(f"/api/v1/users/{dora}", json={"disabled": True}).status_code == 200
    assert _login(http, "dora").content == wrong[0].content

    # The lock is per account: others sign in, and the locked account's sessions live on.
    assert _login(http, "vera").status_code == 200
    assert clients.operator.get("/api/v1/me").status_code == 200


def test_a_burst_from_one_address_is_rate_limited(clients: Clients) -> None:
    url = "/api/v1/settings/auth.login_rate_per_minute"
    version = clients.admin.get(url).json()["version"]
    limit = 6
    changed = clients.admin.put(url, json={"value": limit, "expected_version": version})
    assert changed.status_code == 200, changed.text

    def attempt(index: int) -> httpx.Response:
        username = "vera" if index % 2 else f"guess{index}"
        with httpx.Client(base_url=clients.anonymous.base_url, timeout=10) as client:
            return _login(client, username)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(attempt, range(16)))
    statuses = sorted(response.status_code for response in responses)
    assert set(statuses) <= {200, 401, 429}, statuses
    # The fixture's three sign-ins count too: at most `limit` in the window get through.
    assert len([s for s in statuses if s != 429]) <= limit - 3
    limited = [response for response in responses if response.status_code == 429]
    assert len(limited) >= len(responses) - limit
    for response in limited:
        _error(response, 429, "rate_limited")
        assert _retry_after(response) <= 60
    # Signed-in callers are not affected.
    assert clients.viewer.get("/api/v1/users").status_code == 200


# -- tokens -----------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_expired_tampered_and_foreign_tokens_are_rejected(
    clients: Clients, backend: Backend
) -> None:
    http = clients.anonymous
    token = clients.admin.headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    user_id, session = int(claims["sub"]), claims["sid"]
    server_keys = Keys(backend.settings.resolve_secret_key())

    # The server's own key and a live session: valid, until it expires.
    fresh = server_keys.issue_access_token(user_id=user_id, session_id=session, ttl=60)
    assert _me(http, fresh).status_code == 200
    expired = server_keys.issue_access_token(user_id=user_id, session_id=session, ttl=-5)
    assert "expired" in _error(_me(http, expired), 401, "unauthenticated")["message"]

    header, payload, signature = token.split(".")
    promoted = _b64(json.dumps({**claims, "sub": "2"}).encode())
    middle = len(signature) // 2
    flipped = (
        signature[:middle] + ("A" if signature[middle] != "A" else "B") + signature[middle + 1 :]
    )
    unsigned = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    foreign = Keys(b"some other deployment's secret key, 0123456789")
    rejected = {
        "payload changed": f"{header}.{promoted}.{signature}",
        "signature changed": f"{header}.{payload}.{flipped}",
        "alg none": f"{unsigned}.{payload}.",
        "another key": foreign.issue_access_token(user_id=user_id, session_id=session, ttl=60),
        "unknown session": server_keys.issue_access_token(
            user_id=user_id, session_id="0" * 32, ttl=60
        ),
        "unknown user": server_keys.issue_access_token(user_id=999, session_id=session, ttl=60),
        "truncated": token[:-10],
        "garbage": "not-a-token",
        "api key shape": "qd_123456789abc_not-the-secret",
    }
    assert json.loads(_unb64(promoted))["sub"] == "2"
    for name, bad in rejected.items():
        response = _me(http, bad)
        assert response.status_code == 401, (name, response.text)
        _error(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"] == "Bearer", name
    for headers in ({}, {"Authorization": "Basic YWRhOnB3"}, {"Authorization": "Bearer"}):
        _error(http.get("/api/v1/users", headers=headers), 401, "unauthenticated")
    # The token tampered with was and stays valid.
    assert _me(http, token).status_code == 200


def test_revoked_keys_and_disabled_users_are_refused(clients: Clients) -> None:
    http = clients.anonymous
    point = {"host": "auth-test", "metric": "cpu.percent", "ts": 1_700_000_000.0, "value": 1.0}
    created = clients.operator.post(
        "/api/v1/api-keys", json={"name": "agent", "scopes": ["metrics:write"]}
    )
    assert created.status_code == 201, created.text
    secret, key_id = created.json()["secret"], created.json()["key"]["id"]
    batch = {"points": [point]}
    assert http.post("/api/v1/metrics", json=batch, headers=_bearer(secret)).status_code == 200
    listed = clients.operator.get("/api/v1/api-keys").json()
    assert secret not in json.dumps(listed)
    assert [key["last_used_at"] is not None for key in listed if key["id"] == key_id] == [True]

    prefix, _, rest = secret.rpartition("_")
    tampered = (
        f"{prefix}_{rest[:-4]}AAAA" if not rest.endswith("AAAA") else f"{prefix}_{rest[:-4]}BBBB"
    )
    _error(
        http.post("/api/v1/metrics", json=batch, headers=_bearer(tampered)),
        401,
        "unauthenticated",
    )

    revoked = clients.operator.delete(f"/api/v1/api-keys/{key_id}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    error = _error(
        http.post("/api/v1/metrics", json=batch, headers=_bearer(secret)), 401, "unauthenticated"
    )
    assert "revoked" in error["message"]

    # A disabled user: sessions, refresh tokens and API keys all stop at once.
    dora = _new_user(clients.admin, "dora")
    pair = _login(http, "dora").json()
    session = sign_in(str(http.base_url), "dora")
    try:
        key = session.post("/api/v1/api-keys", json={"name": "k", "scopes": ["metrics:write"]})
        assert key.status_code == 201
    finally:
        session.close()
    dora_key = key.json()["secret"]
    assert http.post("/api/v1/metrics", json=batch, headers=_bearer(dora_key)).status_code == 200

    disabled = clients.admin.patch(f"/api/v1/users/{dora}", json={"disabled": True})
    assert disabled.status_code == 200
    assert disabled.json()["disabled"] is True
    _error(_me(http, pair["access_token"]), 401, "unauthenticated")
    _error(
        http.post(REFRESH, json={"refresh_token": pair["refresh_token"]}), 401, "unauthenticated"
    )
    _error(
        http.post("/api/v1/metrics", json=batch, headers=_bearer(dora_key)),
        401,
        "unauthenticated",
    )
    _error(_login(http, "dora"), 401, "unauthenticated")

    enabled = clients.admin.patch(f"/api/v1/users/{dora}", json={"disabled": False})
    assert enabled.status_code == 200
    assert _login(http, "dora").status_code == 200
    # The session ended by disabling stays ended.
    _error(_me(http, pair["access_token"]), 401, "unauthenticated")


# -- bad input --------------------------------------------------------------------


def test_bad_input_is_refused_in_the_one_error_shape(clients: Clients) -> None:
    admin = clients.admin
    me = admin.get("/api/v1/me").json()["id"]
    json_type = {"Content-Type": "application/json"}
    refusals: list[tuple[str, httpx.Response, int]] = [
        # Unknown fields, at the top level and nested.
        (
            "login extra field",
            admin.post(LOGIN, json={"username": "ada", "password": "p", "admin": True}),
            422,
        ),
        (
            "user extra field",
            admin.post(
                "/api/v1/users",
                json={"username": "u1", "password": PASSWORD, "role": "viewer", "is_admin": True},
            ),
            422,
        ),
        ("patch extra field", admin.patch(f"/api/v1/users/{me}", json={"roles": ["x"]}), 422),
        (
            "setting extra field",
            admin.put(
                "/api/v1/settings/collector.interval_seconds",
                json={"value": 2, "expected_version": 0, "force": True},
            ),
            422,
        ),
        (
            "point extra field",
            admin.post(
                "/api/v1/metrics",
                json={
                    "points": [
                        {"host": "h", "metric": "cpu.percent", "ts": 1.0, "value": 1.0, "unit": "%"}
                    ]
                },
            ),
            422,
        ),
        (
            "key extra field",
            admin.post(
                "/api/v1/api-keys", json={"name": "k", "scopes": ["metrics:read"], "owner": 1}
            ),
            422,
        ),
        # Malformed or mistyped bodies.
        (
            "truncated JSON",
            admin.post(LOGIN, content=b'{"username": "ada", ', headers=json_type),
            422,
        ),
        ("not JSON", admin.post("/api/v1/users", content=b"username=ada", headers=json_type), 422),
        ("empty body", admin.post(LOGIN, content=b"", headers=json_type), 422),
        ("array body", admin.post(LOGIN, json=["ada", PASSWORD]), 422),
        ("wrong types", admin.post(LOGIN, json={"username": 7, "password": None}), 422),
        ("missing field", admin.post(REFRESH, json={}), 422),
        (
            "unknown role",
            admin.post(
                "/api/v1/users", json={"username": "u2", "password": PASSWORD, "role": "root"}
            ),
            422,
        ),
        (
            "unknown scope",
            admin.post("/api/v1/api-keys", json={"name": "k", "scopes": ["everything"]}),
            422,
        ),
        (
            "short password",
            admin.post(
                "/api/v1/users", json={"username": "u3", "password": "short", "role": "viewer"}
            ),
            422,
        ),
        (
            "bad setting value",
            admin.put(
                "/api/v1/settings/collector.interval_seconds",
                json={"value": "fast", "expected_version": 0},
            ),
            422,
        ),
        (
            "not UTF-8",
            admin.post(LOGIN, content=b'{"username": "\xff\xfe"}', headers=json_type),
            400,
        ),
        ("form body", admin.post(LOGIN, data={"username": "ada", "password": PASSWORD}), 422),
        # Bad path and query parameters.
        ("id not a number", admin.get("/api/v1/users/ada"), 422),
        ("id out of range", admin.get("/api/v1/users/99999999999999999999"), 422),
        ("negative id", admin.delete("/api/v1/api-keys/-1"), 422),
        ("limit not a number", admin.get("/api/v1/audit", params={"limit": "all"}), 422),
        ("cursor out of range", admin.get("/api/v1/audit", params={"before_id": 2**63}), 422),
        (
            "NaN time",
            admin.get("/api/v1/metrics/query", params={"series": 1, "start": "nan", "end": 10}),
            422,
        ),
        ("infinite time", admin.get("/api/v1/audit", params={"since": "inf"}), 422),
        (
            "series out of range",
            admin.get("/api/v1/metrics/query", params={"series": 2**40, "start": 0, "end": 10}),
            422,
        ),
        (
            "version out of range",
            admin.post(
                "/api/v1/settings/collector.interval_seconds/rollback", json={"version": 2**40}
            ),
            422,
        ),
        ("import not an export", admin.post("/api/v1/settings/import", json={"settings": {}}), 422),
        # Not found, conflicts, methods.
        ("no such user", admin.get("/api/v1/users/9999"), 404),
        ("no such setting", admin.get("/api/v1/settings/no.such.key"), 404),
        ("no such path", admin.get("/api/v1/nowhere"), 404),
        (
            "taken username",
            admin.post(
                "/api/v1/users", json={"username": "OTTO", "password": PASSWORD, "role": "viewer"}
            ),
            409,
        ),
        ("delete oneself", admin.delete(f"/api/v1/users/{me}"), 409),
        (
            "stale version",
            admin.put(
                "/api/v1/settings/collector.interval_seconds",
                json={"value": 3, "expected_version": 5},
            ),
            409,
        ),
        ("wrong method", admin.put("/api/v1/users"), 405),
    ]
    codes = {
        400: "invalid",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        422: "invalid",
    }
    mismatches: list[str] = []
    for name, response, status in refusals:
        try:
            error = _error(response, status, codes[status])
        except (AssertionError, ValueError, KeyError) as failure:
            mismatches.append(f"{name}: {response.status_code} {response.text[:200]} ({failure})")
            continue
        if status == 422 and "errors" in error["details"]:
            assert all("input" not in item for item in error["details"]["errors"]), name
    assert mismatches == []

    # A refused body is never echoed back: it may hold a password.
    response = admin.post(
        LOGIN, json={"username": "ada", "password": "hunter2-secret", "x": "hunter2-secret"}
    )
    assert "hunter2" not in response.text
    # Nothing above changed anything.
    assert admin.get("/api/v1/settings/collector.interval_seconds").json()["version"] == 0
    assert sorted(u["username"] for u in admin.get("/api/v1/users").json()) == [
        "ada",
        "otto",
        "vera",
    ]
