"""The bearer token of protected routes (the AI Multimedia Platform's `Authorization: Bearer`).

With FACET_API_TOKEN empty every route is open, as the platform's own default is; set, the face
gallery's routes and /ws/camera need it. Compared in constant time (`hmac.compare_digest` over
the bytes), so an attacker cannot learn the token from how long a refusal takes."""

from __future__ import annotations

import hmac

from fastapi import Request

from gateway.errors import Unauthorized
from gateway.settings import Settings

SCHEME = "bearer"


def token_accepted(settings: Settings, authorization: str | None) -> bool:
    """Whether an Authorization header value lets a caller through."""
    expected = settings.api_token.get_secret_value()
    if not expected:
        return True
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != SCHEME:
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def check_token(settings: Settings, authorization: str | None) -> None:
    if not token_accepted(settings, authorization):
        detail = (
            "this route needs the header 'Authorization: Bearer <token>'"
            if not authorization
            else "the bearer token is not valid"
        )
        raise Unauthorized(detail)


def require_token(request: Request) -> None:
    """A route dependency: 401 (with WWW-Authenticate: Bearer) unless the token matches."""
    check_token(request.app.state.settings, request.headers.get("authorization"))
