"""The gateway as its users call it, over HTTP: an upscale job (submit → poll → download) and a
restoration (POST /restore → download). Each request notes where its time went, from what the
gateway answers: the job's processing time and its wait in the queue, the download.

Status polls follow Facet's own REST client (clients.rest): the first after `poll_s`, then
each 1.5× later, up to every 2 s. Polling every few milliseconds would measure the polls: on
a 2-core box their CPU comes out of the model's threads. The time between the job's completion
and the poll that saw it is noted (`poll_slack_ms`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final

from perf.loadgen import Request, RequestFactory
from perf.measure import Recorder
from perf.photos import Upload

HTTP_TIMEOUT_S: Final = 900.0
JOB_TIMEOUT_S: Final = 1800.0


def http_client(url: str) -> Any:
    import httpx

    return httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S)


def wait_for_job(
    client: Any, job_id: str, poll_s: float, recorder: Recorder | None = None
) -> dict[str, Any]:
    from clients.rest import MAX_POLL_S

    deadline = time.monotonic() + JOB_TIMEOUT_S
    interval = poll_s
    polls = 0
    while True:
        status: dict[str, Any] = client.get(f"/status/{job_id}").json()
        polls += 1
        if status.get("status") == "completed":
            if recorder is not None:
                recorder.note("polls", polls)
                completed = status.get("completed_at")
                if completed is not None:  # same host: the gateway's clock is ours
                    recorder.note("poll_slack_ms", 1000.0 * max(0.0, time.time() - completed))
            return status
        if status.get("status") in ("failed", "cancelled") or time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} ended {status.get('status')}: {status}")
        time.sleep(interval)
        interval = min(interval * 1.5, MAX_POLL_S)


def note_job(recorder: Recorder, status: dict[str, Any]) -> None:
    """The job's own time (decode, tiles through Triton, encode, store) and its queue wait."""
    processing = status.get("processing_time")
    if processing is None:
        return
    recorder.note("processing_ms", 1000.0 * float(processing))
    created, completed = status.get("created_at"), status.get("completed_at")
    if created is not None and completed is not None:
        queued = float(completed) - float(created) - float(processing)
        recorder.note("queue_ms", 1000.0 * max(0.0, queued))


def upscale_factory(
    url: str, uploads: Sequence[Upload], poll_s: float, recorder: Recorder, scale: int = 4
) -> RequestFactory:
    def factory() -> Request:
        client = http_client(url)

        def request(index: int) -> object:
            upload = uploads[index % len(uploads)]
            started = time.perf_counter()
            submitted = client.post(
                "/upscale",
                files={"file": (upload.name, upload.data, "image/jpeg")},
                data={"scale": str(scale)},
            )
            submitted.raise_for_status()
            recorder.note("submit_ms", 1000.0 * (time.perf_counter() - started))
            status = wait_for_job(client, submitted.json()["job_id"], poll_s, recorder)
            fetch_started = time.perf_counter()
            result = client.get(status["result_url"])
            result.raise_for_status()
            if not result.content:
                raise RuntimeError(f"job {status['job_id']}: empty result")
            recorder.note("download_ms", 1000.0 * (time.perf_counter() - fetch_started))
            note_job(recorder, status)
            return result.content

        return request

    return factory


def restore_factory(
    url: str, upload: Upload, recorder: Recorder, *, upscale: int, weight: float, min_score: float
) -> RequestFactory:
    def factory() -> Request:
        client = http_client(url)

        def request(index: int) -> object:
            answer = client.post(
                "/restore",
                files={"file": (upload.name, upload.data, "image/jpeg")},
                data={
                    "upscale": str(upscale),
                    "weight": str(weight),
                    "face_detector_model": "mtcnn",
                    "face_detector_score": str(min_score),
                },
            )
            answer.raise_for_status()
            body = answer.json()
            fetch_started = time.perf_counter()
            result = client.get(body["download_url"])
            result.raise_for_status()
            recorder.note("download_ms", 1000.0 * (time.perf_counter() - fetch_started))
            recorder.note("processing_ms", 1000.0 * float(body["processing_time"]))
            recorder.note("faces", float(body.get("faces_restored", 0)))
            recorder.note("faces_detected", float(body.get("faces_detected", 0)))
            return result.content

        return request

    return factory
