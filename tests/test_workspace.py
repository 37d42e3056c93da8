"""The workspace's door: the service's API-key rule for pages (a login form sets an HttpOnly,
SameSite=Strict session cookie holding an HMAC of the key), the admin key for saving, and
forms protected against cross-site posts (Origin check and a double-submit CSRF token)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from leadml.api import create_app
from leadml.config import ServeSettings
from leadml.workspace_auth import CSRF_COOKIE, SESSION_COOKIE

BASE = "http://testserver"


def client(model, **serve) -> TestClient:
    app = create_app(serve=ServeSettings(reload_seconds=0, **serve), model=model)
    return TestClient(app, base_url=BASE, follow_redirects=False)


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_an_open_service_opens_the_workspace_with_its_navigation(crm_model):
    with client(crm_model) as c:
        r = c.get("/workspace")
        assert r.status_code == 303 and r.headers["location"] == "/workspace/overview"
        page = c.get("/workspace/overview")
    assert page.status_code == 200
    assert '<html lang="en">' in page.text and 'aria-current="page"' in page.text
    assert "leadml version 7" in page.text or "version 7" in page.text
    assert page.cookies.get(CSRF_COOKIE)  # the forms' token, set on the first page
    assert 'href="/static/workspace.css"' in page.text
    assert "http://" not in page.text.replace(BASE, "") and "https://" not in page.text


def test_with_a_key_pages_send_people_to_the_login_form(crm_model):
    with client(crm_model, api_key="reader-key", admin_key="admin-key") as c:
        r = c.get("/workspace/overview")
        assert r.status_code == 303 and r.headers["location"].startswith("/workspace/login")
        form = c.get(r.headers["location"])
        assert 'for="key"' in form.text  # the input is labelled
        token = csrf(form.text)
        wrong = c.post("/workspace/login", data={"key": "nope", "csrf_token": token})
        assert wrong.status_code == 401 and "not the service" in wrong.text
        ok = c.post(
            "/workspace/login",
            data={"key": "reader-key", "csrf_token": token, "next": "/workspace/overview"},
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/workspace/overview"
        session = ok.cookies.get(SESSION_COOKIE)
        assert session and "reader-key" not in session  # an HMAC, never the key
        assert "httponly" in ok.headers["set-cookie"].lower()
        assert "samesite=strict" in ok.headers["set-cookie"].lower()
        page = c.get("/workspace/overview")
        assert page.status_code == 200 and "Log out" in page.text and "(admin)" not in page.text
        assert c.get("/model").status_code == 200  # the page's own scripts may call the API
        admin = c.post("/workspace/login", data={"key": "admin-key", "csrf_token": token})
        assert admin.status_code == 303
        assert "(admin)" in c.get("/workspace/overview").text
        c.post("/workspace/logout", data={"csrf_token": token})
        assert c.get("/workspace/overview").status_code == 303


def test_forms_from_another_site_or_without_the_token_are_refused(crm_model):
    with client(crm_model, api_key="reader-key") as c:
        token = csrf(c.get("/workspace/login").text)
        no_token = c.post("/workspace/login", data={"key": "reader-key"})
        assert no_token.status_code == 403 and "security token" in no_token.json()["error"]
        foreign = c.post(
            "/workspace/login",
            data={"key": "reader-key", "csrf_token": token},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403 and "evil.example" in foreign.json()["error"]
        # next= is a path of this site only: never an open redirect
        away = c.post(
            "/workspace/login",
            data={"key": "reader-key", "csrf_token": token, "next": "//evil.example/x"},
        )
        assert away.headers["location"] == "/workspace/overview"


def test_scripts_may_send_the_key_in_the_header(crm_model):
    with client(crm_model, api_key="reader-key") as c:
        r = c.get("/workspace/overview", headers={"X-API-Key": "reader-key"})
        assert r.status_code == 200
        r = c.get("/workspace/overview", headers={"Accept": "application/json"})
        assert r.status_code == 401
