"""The server end to end: sign in, read, write, errors in the one JSON shape."""

from __future__ import annotations

from tests.api.conftest import Clients


def test_me_and_users(clients: Clients) -> None:
    me = clients.operator.get("/api/v1/me").json()
    assert (me["username"], me["role"]) == ("otto", "operator")
    assert "metrics:write" in me["permissions"]
    users = clients.viewer.get("/api/v1/users").json()
    assert sorted(user["username"] for user in users) == ["ada", "otto", "vera"]


def test_errors_have_one_shape(clients: Clients) -> None:
    response = clients.anonymous.get("/api/v1/users")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    assert response.headers["www-authenticate"] == "Bearer"
    response = clients.viewer.post(
        "/api/v1/users", json={"username": "x1", "password": "p" * 10, "role": "viewer"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    response = clients.admin.post("/api/v1/users", json={"username": "x1"})
    assert response.status_code == 422
    body = response.json()["error"]
    assert body["code"] == "invalid"
    assert "password" in body["message"]
    response = clients.admin.get("/api/v1/users/9999")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")
    response = clients.admin.get("/api/v1/nowhere")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


def test_stale_setting_write_is_409(clients: Clients) -> None:
    url = "/api/v1/settings/collector.interval_seconds"
    first = clients.operator.put(url, json={"value": 5, "expected_version": 0, "reason": "r"})
    assert first.status_code == 200
    assert first.json()["version"] == 1
    stale = clients.admin.put(url, json={"value": 7, "expected_version": 0, "reason": "r"})
    assert stale.status_code == 409
    assert stale.json()["error"]["details"]["current_version"] == 1
    assert clients.viewer.get(url).json()["value"] == 5


def test_request_id_is_echoed_and_recorded(clients: Clients) -> None:
    response = clients.admin.post(
        "/api/v1/users",
        json={"username": "traced", "password": "long enough pw", "role": "viewer"},
        headers={"X-Request-ID": "trace-123"},
    )
    assert response.status_code == 201
    assert response.headers["x-request-id"] == "trace-123"
    entries = clients.admin.get("/api/v1/audit", params={"action": "users.create"}).json()
    traced = [e for e in entries["entries"] if e["target"] == "traced"]
    assert traced[0]["correlation_id"] == "trace-123"
    assert traced[0]["source"] == "127.0.0.1"
    generated = clients.admin.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32


def test_health_and_prometheus(clients: Clients) -> None:
    assert clients.anonymous.get("/healthz").json() == {"status": "ok"}
    ready = clients.anonymous.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "bus": "ok"}
    text = clients.anonymous.get("/metrics").text
    assert 'quarterdeck_http_requests_total{method="GET",route="/readyz",status="200"}' in text


def test_body_too_large(clients: Clients) -> None:
    response = clients.admin.post(
        "/api/v1/metrics",
        content=b"x" * (9 * 1024 * 1024),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
