"""Pure rules of the recognition API: consent records, the bearer token, which face a
registration takes, which recognizer `auto` picks, and classify's labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import SecretStr

from gateway.auth import check_token, token_accepted
from gateway.errors import BadRequest, Unauthorized
from gateway.faces.types import Face
from gateway.recognition.consent import DAY_S, parse_consent
from gateway.recognition.recognizers import ARCFACE, DLIB, choose_recognizer
from gateway.recognition.service import the_one_face
from gateway.routes.recognition_images import parse_labels
from gateway.settings import Settings
from triton_core.catalog import ModelCatalog, ModelFacts

NOW = 1_800_000_000.0
GOOD = {"purpose": "face_recognition", "text_version": "2026-12-01"}


def settings(**values: object) -> Settings:
    return Settings(**values)  # type: ignore[arg-type]


def test_consent_is_recorded_with_the_retention_period_as_its_expiry():
    consent = parse_consent(json.dumps(GOOD), settings(gallery_retention_days=30), now=NOW)
    assert (consent.purpose, consent.text_version) == ("face_recognition", "2026-12-01")
    assert consent.agreed_at == NOW and consent.expires_at == NOW + 30 * DAY_S


def test_a_person_may_ask_for_an_earlier_end_but_not_a_later_one():
    sooner = parse_consent(json.dumps({**GOOD, "expires_at": NOW + 60}), settings(), now=NOW)
    later = parse_consent(json.dumps({**GOOD, "expires_at": NOW + 10**9}), settings(), now=NOW)
    assert sooner.expires_at == NOW + 60
    assert later.expires_at == NOW + 365 * DAY_S


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "yes",
        "[]",
        json.dumps({"purpose": "face_recognition"}),
        json.dumps({**GOOD, "text_version": "0.9"}),
        json.dumps({**GOOD, "purpose": ""}),
        json.dumps({**GOOD, "purpose": "marketing"}),
        json.dumps({**GOOD, "purpose": "x" * 201}),
        json.dumps({**GOOD, "signed": True}),
        json.dumps({**GOOD, "expires_at": NOW - 1}),
        json.dumps({**GOOD, "expires_at": True}),
        json.dumps({**GOOD, "expires_at": "tomorrow"}),
    ],
)
def test_a_registration_without_a_valid_consent_record_is_refused(raw):
    with pytest.raises(BadRequest):
        parse_consent(raw, settings(), now=NOW)


def test_the_retention_period_cannot_exceed_three_years():
    with pytest.raises(ValueError):
        settings(gallery_retention_days=3 * 365 + 1)


def test_without_a_configured_token_every_caller_passes():
    assert token_accepted(settings(), None)


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("Bearer s3cret", True),
        ("bearer s3cret", True),
        ("Bearer  s3cret ", True),
        ("Bearer s3cre", False),
        ("Bearer s3cret2", False),
        ("Basic s3cret", False),
        ("s3cret", False),
        ("Bearer", False),
        ("", False),
        (None, False),
    ],
)
def test_with_a_token_only_the_exact_bearer_token_passes(header, accepted):
    configured = settings(api_token=SecretStr("s3cret"))
    assert token_accepted(configured, header) is accepted
    if not accepted:
        with pytest.raises(Unauthorized):
            check_token(configured, header)


def face(x: float, side: float) -> Face:
    points = np.array([[x + 3, 3], [x + 7, 3], [x + 5, 5], [x + 3, 8], [x + 7, 8]], np.float32)
    return Face((x, 0.0, x + side, side), 0.99, points)


def test_registration_takes_the_only_face_or_a_clearly_larger_one():
    alone = face(0, 10)
    assert the_one_face([alone]) is alone
    big = face(0, 30)
    assert the_one_face([face(50, 10), big]) is big
    with pytest.raises(BadRequest, match="2 faces"):
        the_one_face([face(0, 30), face(50, 25)])
    with pytest.raises(BadRequest, match="no face"):
        the_one_face([])


def catalog(arcface_kind: str | None) -> ModelCatalog:
    names = [DLIB.model] + ([ARCFACE.model] if arcface_kind else [])
    kinds = {DLIB.model: "package", ARCFACE.model: arcface_kind}
    return ModelCatalog(ModelFacts(n, 16, (), (), kinds[n], "x", (), {}) for n in names)


def test_auto_picks_arcface_only_when_its_weights_are_official():
    assert choose_recognizer("auto", catalog("official")) is ARCFACE
    assert choose_recognizer("auto", catalog("synthetic")) is DLIB
    assert choose_recognizer("auto", catalog(None)) is DLIB
    listed_only = ModelCatalog(listed=[ARCFACE.model])  # in the repository, not loaded
    assert choose_recognizer("auto", listed_only) is DLIB
    assert choose_recognizer("arcface", catalog("synthetic")) is ARCFACE


def test_auto_keeps_the_recognizer_the_gallery_already_holds_faces_for():
    assert choose_recognizer("auto", catalog("official"), [DLIB.space]) is DLIB
    assert choose_recognizer("auto", catalog("synthetic"), [ARCFACE.space]) is ARCFACE
    assert choose_recognizer("dlib", catalog("official"), [ARCFACE.space]) is DLIB


def test_labels_come_as_a_json_list_or_comma_separated_and_are_checked():
    assert parse_labels(None) is None and parse_labels("  ") is None
    assert parse_labels('["cat", "dog", "cat"]') == ["cat", "dog"]
    assert parse_labels("cat, dog ,bird") == ["cat", "dog", "bird"]
    for bad in ('["cat"]', "[1, 2]", "[broken", ",".join(f"l{i}" for i in range(101))):
        with pytest.raises(BadRequest):
            parse_labels(bad)
