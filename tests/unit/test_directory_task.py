"""A directory task's job row as the seed's task object, and the /api/v1 error body."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.responses import JSONResponse

from gateway.app import context_error_response
from gateway.context.directory_task import (
    KIND,
    DirectoryTask,
    directory_result,
    new_task_id,
    task_view,
)
from gateway.context.library import DirectoryOutcome
from gateway.errors import JobCancelled, NotFound, Unavailable
from gateway.jobs.store import Job


def job(status: str, outcome: dict | None, error: str | None = None) -> Job:
    return Job(
        id=new_task_id(),
        kind=KIND,
        status=status,  # type: ignore[arg-type]
        progress=0,
        parameters={"directory_path": "/media/photos", "recursive": False},
        original_filename="photos",
        input_path="",
        result_id=None,
        result_path=None,
        result_media_type=None,
        error=error,
        attempts=1,
        created_at=1_700_000_000.0,
        started_at=1_700_000_001.0,
        completed_at=None if status == "processing" else 1_700_000_100.0,
        processing_time=None,
        outcome=outcome,
    )


def test_a_running_task_shows_its_fractional_progress_and_message() -> None:
    view = task_view(
        job(
            "processing",
            {
                "progress": 65.5,
                "message": "Processing image 33 of 50",
                "updated_at": 1_700_000_050.0,
            },
        )
    )
    assert view["task_id"].startswith("task-")
    assert (view["status"], view["progress"], view["message"]) == (
        "processing",
        65.5,
        "Processing image 33 of 50",
    )
    assert view["result"] is None and view["error"] is None
    assert view["created_at"] < view["updated_at"]


def test_a_finished_task_carries_its_result_and_a_failed_one_its_error() -> None:
    result = directory_result(DirectoryOutcome(total_files=2, processed_ids=["a", "b"]), None)
    done = task_view(job("completed", {"progress": 100.0, "result": result}))
    assert done["progress"] == 100.0 and done["result"]["processed"] == 2
    failed = task_view(job("failed", {"progress": 40.0}, error="inference server unavailable"))
    assert failed["error"] == "inference server unavailable" and failed["result"] is None


def test_a_directory_result_counts_what_happened_to_each_file() -> None:
    outcome = DirectoryOutcome(
        total_files=4,
        processed_ids=["a"],
        skipped_ids=["b", "c"],
        failed_files=["/media/x.jpg"],
        failures={"/media/x.jpg": "not a JPEG, PNG or WebP image"},
    )
    body = directory_result(outcome, "clip: synthetic weights")
    assert (body["processed"], body["skipped"], body["failed"]) == (1, 2, 1)
    assert body["message"] == "Directory processed: 1 images processed"
    assert body["warning"] == "clip: synthetic weights"


def test_api_v1_errors_take_the_seeds_body_with_the_same_status_and_headers() -> None:
    plain = JSONResponse(
        {"detail": "no image with id 'x'", "error": "NotFound"}, 404, headers={"Retry-After": "5"}
    )
    shaped = context_error_response(plain)
    body = json.loads(bytes(shaped.body))
    assert shaped.status_code == 404 and shaped.headers["retry-after"] == "5"
    assert body["success"] is False and body["error"] == "NotFound"
    assert body["message"] == "no image with id 'x'" and body["details"] == {"status_code": 404}
    assert "T" in body["timestamp"]


class Published(list):
    def __call__(self, channel: str, event: dict) -> None:
        self.append((channel, event))


class FailingLibrary:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.roots = self

    def existing_directory(self, name: str) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "final"),
    [
        (Unavailable("inference server unavailable"), False),  # the runner tries again
        (JobCancelled("cancelled"), False),
        (NotFound("directory_path: 'x' does not exist"), True),
        (RuntimeError("a bug"), True),
    ],
)
def test_only_a_failure_the_runner_will_not_retry_is_published_as_final(error, final) -> None:
    published = Published()
    task = DirectoryTask(None, FailingLibrary(error), published)  # type: ignore[arg-type]
    with pytest.raises(type(error)):
        asyncio.run(task(job("processing", None)))
    failed = [event for _, event in published if event["type"] == "task_failed"]
    assert bool(failed) is final
    if final:
        assert "Traceback" not in failed[0]["error"]
