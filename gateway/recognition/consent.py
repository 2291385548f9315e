"""Consent before collection: what a registration must carry before any face is embedded.

GDPR Art. 9 asks for explicit consent to process biometric data for identification; BIPA asks
for a written release before collection and destruction within three years. A registration
names the purpose the person agreed to and the version of the consent text they read; the
enrolment is stored with that record, when it was given, and when it expires (the retention
period, FACET_GALLERY_RETENTION_DAYS, or earlier when the person asked for an earlier end)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

from gateway.errors import BadRequest
from gateway.settings import Settings

MAX_TEXT = 200
DAY_S = 86_400
EXAMPLE = '{"purpose": "face_recognition", "text_version": "2026-12-01"}'


@dataclass(frozen=True)
class Consent:
    purpose: str
    text_version: str
    agreed_at: float  # epoch seconds: when the server recorded it
    expires_at: float

    def as_metadata(self) -> dict[str, Any]:
        return asdict(self)


def parse_consent(raw: str | None, settings: Settings, now: float | None = None) -> Consent:
    """The `consent` form field (a JSON object), checked; BadRequest says what is missing."""
    if raw is None or not raw.strip():
        raise BadRequest(
            "registration needs the person's consent: send a 'consent' field such as "
            f"{EXAMPLE} (see GET /api/face-recognition/policy)"
        )
    fields = _object(raw)
    purpose = _text(fields, "purpose")
    if purpose not in settings.consent_purposes:
        raise BadRequest(
            f"consent purpose {purpose[:64]!r} is not one this server collects faces for; "
            f"accepted: {', '.join(settings.consent_purposes)}"
        )
    version = _text(fields, "text_version")
    if version not in settings.consent_text_versions:
        raise BadRequest(
            f"consent text_version {version!r} is not one this server publishes; "
            f"accepted: {', '.join(settings.consent_text_versions)}"
        )
    agreed = time.time() if now is None else now
    expires = agreed + settings.gallery_retention_days * DAY_S
    if "expires_at" in fields:
        expires = min(expires, _moment(fields["expires_at"], agreed))
    return Consent(purpose, version, agreed, expires)


def _object(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"consent must be a JSON object such as {EXAMPLE}: {exc.msg}") from exc
    except (ValueError, RecursionError) as exc:  # a number of over 4300 digits; deep nesting
        raise BadRequest(
            f"consent must be a JSON object such as {EXAMPLE}: it nests too deep or holds a "
            "number too long to read"
        ) from exc
    if not isinstance(value, dict):
        raise BadRequest(f"consent must be a JSON object such as {EXAMPLE}")
    unknown = sorted(set(value) - {"purpose", "text_version", "expires_at"})
    if unknown:
        raise BadRequest(f"consent has unknown fields: {', '.join(map(str, unknown))[:200]}")
    return value


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"consent.{name} must be a non-empty string")
    if len(value) > MAX_TEXT or not value.isprintable():
        raise BadRequest(f"consent.{name} must be printable and at most {MAX_TEXT} characters")
    return value.strip()


def _moment(value: Any, agreed: float) -> float:
    """consent.expires_at: epoch seconds after the agreement, finite (an integer too large for
    a float, NaN and ±Infinity, which Python's JSON reads, are not a moment)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest("consent.expires_at must be a number (epoch seconds)")
    try:
        moment = float(value)
    except OverflowError:
        moment = math.inf
    if not math.isfinite(moment):
        raise BadRequest("consent.expires_at must be a finite number (epoch seconds)")
    if moment <= agreed:
        raise BadRequest("consent.expires_at must lie in the future")
    return moment
