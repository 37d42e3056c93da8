"""Who may open the workspace and post its forms.

The workspace follows the service's API-key rule: with `LEADML_API_KEY` set, a page needs the
key, either in the `X-API-Key` header (scripts) or as a session cookie set by the login form
(people: a browser cannot add a header to a link). The cookie holds an HMAC of the key, never
the key; it is HttpOnly and SameSite=Strict, so no other site's page can send it. Forms that
change something (saving band lines) need `LEADML_ADMIN_KEY`, the same way.

Every form also carries a CSRF token: a random value kept in its own cookie and echoed in a
hidden field (the double-submit pattern), and a POST whose Origin (or Referer) names another
host is refused before the form is read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from fastapi import Request

from leadml.config import ServeSettings
from leadml.errors import LeadmlError

SESSION_COOKIE = "leadml_session"
CSRF_COOKIE = "leadml_csrf"
CSRF_FIELD = "csrf_token"
API_KEY_HEADER = "X-API-Key"


class LoginRequired(LeadmlError):
    """A page asked for without the key: the service answers with the login form."""

    status = 401

    def __init__(self, next_path: str, admin: bool = False):
        self.next_path, self.admin = next_path, admin
        super().__init__("log in with the service's key")


class FormRefused(LeadmlError):
    """A form post from another site, or without its CSRF token."""

    status = 403


def session_token(key: str, role: str) -> str:
    """What the session cookie holds for a key: an HMAC of it, so the cookie is not the key."""
    return hmac.new(key.encode(), f"leadml-workspace:{role}".encode(), hashlib.sha256).hexdigest()


def _same(given: str | None, expected: str | None) -> bool:
    return bool(given and expected) and secrets.compare_digest(str(given), str(expected))


@dataclass(frozen=True)
class Visitor:
    """Who is looking: `user` (may read), `admin` (may also save); `open` when the service
    has no API key (anyone may read)."""

    role: str
    csrf: str  # the token the page's forms must echo

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def visitor(request: Request, serve: ServeSettings) -> Visitor:
    """The visitor of a workspace page; `LoginRequired` when the service wants a key."""
    header = request.headers.get(API_KEY_HEADER)
    cookie = request.cookies.get(SESSION_COOKIE)
    admin = serve.admin_key is not None and (
        _same(header, serve.admin_key) or _same(cookie, session_token(serve.admin_key, "admin"))
    )
    user = (
        admin
        or not serve.api_key
        or _same(header, serve.api_key)
        or _same(cookie, session_token(serve.api_key, "user"))
    )
    if not user:
        raise LoginRequired(request.url.path)
    role = "admin" if admin else "user" if serve.api_key else "open"
    return Visitor(role, request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24))


def key_role(key: str, serve: ServeSettings) -> str | None:
    """The role a key typed into the login form gives, or None for a wrong key."""
    if serve.admin_key and _same(key, serve.admin_key):
        return "admin"
    if serve.api_key and _same(key, serve.api_key):
        return "user"
    return None


def check_origin(request: Request) -> None:
    """Refuse a POST sent by another site's page (its Origin or Referer names another host)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source and source != "null":
        host = urlsplit(source).netloc
        if host != request.headers.get("host", ""):
            raise FormRefused(f"form sent from {host or 'another site'}: refused")
    elif source == "null":
        raise FormRefused("form sent from an opaque origin: refused")


def check_csrf(request: Request, form_token: str | None) -> None:
    """The form's hidden token must match the page's CSRF cookie (double submit)."""
    if not _same(form_token, request.cookies.get(CSRF_COOKIE)):
        raise FormRefused(
            "the form's security token is missing or stale: reload the page and send it again"
        )


def login_url(next_path: str) -> str:
    return f"/workspace/login?next={quote(next_path, safe='/')}"
