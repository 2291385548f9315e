"""The FaceFusion API's ProcessRequest as the gateway reads it, its job ids and output names."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from gateway.errors import BadRequest
from gateway.swap.outputs import new_job_id, output_path
from gateway.swap.request import EXECUTION_PROVIDERS, PROCESSORS, parse_request


def test_the_seeds_request_string_parses_with_its_defaults() -> None:
    parsed = parse_request('{"processors":["face_swapper"],"execution_providers":["cpu"]}')
    assert parsed.processors == ["face_swapper"]
    assert parsed.output_image_scale == 100
    assert parsed.output_video_fps is None
    assert parsed.face_detector_score == 0.5
    assert parsed.run_async is False


def test_the_seeds_high_quality_video_request_parses() -> None:
    parsed = parse_request(
        '{"processors":["face_swapper","face_enhancer"],"execution_providers":["cuda"],'
        '"execution_thread_count":8,"output_video_fps":30,"output_video_scale":100,'
        '"face_detector_score":0.6}'
    )
    assert parsed.execution_thread_count == 8
    assert parsed.output_video_fps == 30


def test_an_omitted_request_means_face_swapper_with_defaults() -> None:
    assert parse_request(None).processors == ["face_swapper"]
    assert parse_request("").processors == ["face_swapper"]


def test_async_is_spelled_as_in_json() -> None:
    assert parse_request('{"async": true}').run_async is True


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"processors":["face_melter"]}', "accepted: " + ", ".join(PROCESSORS)),
        ('{"execution_providers":["quantum"]}', "accepted: " + ", ".join(EXECUTION_PROVIDERS)),
        ('{"execution_thread_count": 64}', "execution_thread_count"),
        ('{"output_image_scale": 5}', "output_image_scale"),
        ('{"output_video_scale": 401}', "output_video_scale"),
        ('{"face_detector_score": 1.5}', "face_detector_score"),
        ('{"processors": []}', "processors"),
        ('{"processors":["face_swapper","face_swapper"]}', "once"),
        ('{"face_swapper_pixel_boost": 300}', "face_swapper_pixel_boost"),
        ('{"procesors":["face_swapper"]}', "procesors"),
    ],
)
def test_a_bad_request_is_a_400_naming_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(BadRequest, match=re.escape(words)):
        parse_request(text)


def test_job_ids_have_the_seeds_shape() -> None:
    job_id = new_job_id(datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC))
    assert re.fullmatch(r"api_20250101_120000_[0-9a-f]{6}", job_id)
    assert new_job_id() != new_job_id()


def test_output_paths_have_the_seeds_prefix() -> None:
    assert output_path("x.jpg") == ".api_outputs/x.jpg"
