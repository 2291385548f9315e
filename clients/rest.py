"""A synchronous client of the Facet REST gateway: submit an upscale job, poll it, download the
result, cancel it, read health and metrics; restore the faces of a photo (GFPGAN), download the
restoration, submit and follow a batch of image URLs, compare two images (POST /metrics); swap
a face into an image or a video (the FaceFusion API: /process/image, /process/video,
/processors, /download/{filename}, /output/{filename}).

Answers of 429 and 503 are retried after the server's Retry-After, a bounded number of times;
every other failure raises a `FacetClientError` subclass carrying the server's `detail`.
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, overload
from urllib.parse import quote, unquote

import httpx

from clients.closing import ClosesOnExit
from clients.errors import (
    BadRequestError,
    DeadlineExceededError,
    FacetClientError,
    JobFailedError,
    NotFoundError,
    OverloadedError,
    RateLimitedError,
    ServerError,
    UnavailableError,
)

DEFAULT_URL: Final = "http://127.0.0.1:8000"
RETRY_STATUSES: Final = frozenset({429, 503})
FINISHED: Final = frozenset({"completed", "failed", "cancelled"})
DEFAULT_RETRY_WAIT_S: Final = 1.0  # a 429/503 without Retry-After
FIRST_POLL_S: Final = 0.25
MAX_POLL_S: Final = 2.0  # the gateway allows 60 status requests per minute per client
DOWNLOAD_CHUNK: Final = 1 << 20
# /restore answers only once every face is restored (about 5 s a face on 2 CPU cores, up to 20
# faces), so its answer is awaited longer than the client's usual timeout.
RESTORE_TIMEOUT_S: Final = 300.0
# The seed's synchronous /process/video answers once every frame is swapped (about a second a
# frame on 2 CPU cores), and an upload may be 500 MB: an hour covers a few minutes of video.
VIDEO_TIMEOUT_S: Final = 3600.0
_FILENAME = re.compile(r"filename\*?=(?:UTF-8'')?\"?([^\";]+)\"?", re.IGNORECASE)

StatusCallback = Callable[[dict[str, Any]], None]
ImageSource = str | os.PathLike[str] | bytes
FormData = Mapping[str, str | list[str]]


@dataclass(frozen=True)
class Restoration:
    """The answer of POST /restore. The first six fields are the GFPGAN API's own; the face
    counts and `warning` (set when a model used has synthetic weights: the faces are then not
    meaningfully restored) are the Facet gateway's additions, None from a server without them.
    Sizes are (width, height)."""

    status: str
    restoration_id: str
    original_size: tuple[int, int]
    restored_size: tuple[int, int]
    processing_time: float
    download_url: str
    faces_detected: int | None = None
    faces_restored: int | None = None
    warning: str | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Restoration:
        """Read the gateway's JSON; ServerError when a field is missing or of the wrong type."""
        try:
            return cls(
                status=_field(body, "status", str),
                restoration_id=_field(body, "restoration_id", str),
                original_size=_size(body, "original_size"),
                restored_size=_size(body, "restored_size"),
                processing_time=float(_field(body, "processing_time", (int, float))),
                download_url=_field(body, "download_url", str),
                faces_detected=_optional(body, "faces_detected", int),
                faces_restored=_optional(body, "faces_restored", int),
                warning=_optional(body, "warning", str),
            )
        except KeyError as exc:
            raise ServerError(f"the gateway's restoration answer lacks {exc}") from None
        except TypeError as exc:
            raise ServerError(f"the gateway's restoration answer is malformed: {exc}") from None


@dataclass(frozen=True)
class BatchAccepted:
    """The answer of POST /batch; follow it with `batch_status(batch_id)`."""

    status: str
    batch_id: str
    estimated_completion: str  # ISO 8601, UTC
    status_url: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> BatchAccepted:
        try:
            return cls(
                status=_field(body, "status", str),
                batch_id=_field(body, "batch_id", str),
                estimated_completion=_field(body, "estimated_completion", str),
                status_url=_field(body, "status_url", str),
            )
        except KeyError as exc:
            raise ServerError(f"the gateway's batch answer lacks {exc}") from None
        except TypeError as exc:
            raise ServerError(f"the gateway's batch answer is malformed: {exc}") from None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), else None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_from_response(response: httpx.Response) -> FacetClientError:
    """Map a gateway error answer ({"detail", "error"}, or anything else) to a client error."""
    detail, code = _read_error_body(response)
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    kwargs: dict[str, Any] = {"status": status, "code": code, "retry_after": retry_after}
    if status == 429:
        return RateLimitedError(detail, **kwargs)
    if status == 503:
        cls = OverloadedError if code == "Overloaded" else UnavailableError
        return cls(detail, **kwargs)
    if status == 404:
        return NotFoundError(detail, **kwargs)
    if status == 504:
        return DeadlineExceededError(detail, **kwargs)
    if 400 <= status < 500:
        return BadRequestError(detail, **kwargs)
    return ServerError(detail, **kwargs)


def _read_error_body(response: httpx.Response) -> tuple[str, str | None]:
    """The server's `detail` and `error` name; the status line when the body has none."""
    fallback = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (f"{fallback}: {text[:200]}" if text else fallback), None
    if not isinstance(body, dict):
        return fallback, None
    # The gateway's body ({"detail", "error"}), or the Image Context Extractor's under /api/v1
    # ({"success": false, "error", "message", "details"}).
    detail = body.get("detail", body.get("message"))
    code = body.get("error")
    if detail is None:
        detail = fallback
    elif not isinstance(detail, str):  # e.g. FastAPI's list of validation errors
        detail = str(detail)
    return detail, code if isinstance(code, str) else None


class FacetRestClient(ClosesOnExit):
    """Blocking client of the gateway at `base_url`; use as a context manager or `close()`.

    `max_retries` bounds how often one request is repeated after 429/503; a Retry-After longer
    than `max_retry_wait_s` is not waited for (the error is raised at once).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        max_retry_wait_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s
        self._sleep = sleep
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    # The API ---------------------------------------------------------------------------------

    def submit_upscale(
        self,
        image: str | os.PathLike[str] | bytes,
        scale: int = 2,
        face_enhance: bool = False,
        *,
        filename: str | None = None,
    ) -> dict[str, Any]:
        """POST /upscale: queue a job; returns {job_id, status, message, estimated_time, ...}.

        `image` is a file path or the encoded bytes (JPEG, PNG or WebP); the gateway checks it.
        `face_enhance=True` also restores every face with GFPGAN (400 when the server has no
        GFPGAN); the job's status then carries a `warning` when that model's weights are
        synthetic.
        """
        form = {"scale": str(scale), "face_enhance": _form_bool(face_enhance)}
        return self._json("POST", "/upscale", files={"file": _upload(image, filename)}, data=form)

    def status(self, job_id: str) -> dict[str, Any]:
        """GET /status/{job_id}: {status, progress (0..100), result_url, error, ...}."""
        return self._json("GET", f"/status/{_segment(job_id)}")

    def wait(
        self,
        job_id: str,
        *,
        timeout_s: float = 600.0,
        progress: StatusCallback | None = None,
        poll_interval_s: float = FIRST_POLL_S,
    ) -> dict[str, Any]:
        """Poll until the job finishes; return its final status document when `completed`.

        `progress` gets every status document polled. Polls start every `poll_interval_s` and
        slow down to every 2 s. Raises JobFailedError (failed or cancelled) or
        DeadlineExceededError when `timeout_s` runs out first.
        """
        deadline = time.monotonic() + timeout_s
        interval = poll_interval_s
        while True:
            body = self.status(job_id)
            if progress is not None:
                progress(body)
            state = str(body.get("status"))
            if state == "completed":
                return body
            if state in FINISHED:
                reason = body.get("error") or f"the job was {state}"
                raise JobFailedError(
                    f"job {job_id} {state}: {reason}", job_id=job_id, job_status=state
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceededError(
                    f"job {job_id} still {state} after {timeout_s:g} s", code=state
                )
            self._sleep(min(interval, left))
            interval = min(interval * 1.5, MAX_POLL_S)

    def download(self, result_url: str, dest: str | os.PathLike[str]) -> Path:
        """Stream a result to `dest` (a file, or a directory: the server's filename is used).

        The file appears complete or not at all (written aside, then renamed). Returns its path.
        """
        response = self._send("GET", result_url, stream=True)
        try:
            target = Path(dest)
            if target.is_dir():
                target = target / _download_name(response, result_url)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
            try:
                with partial.open("xb") as file:  # "x": the umask applies, nothing clobbered
                    for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                        file.write(chunk)
                os.replace(partial, target)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.base_url) from exc
        finally:
            response.close()
        return target

    def cancel(self, job_id: str) -> dict[str, Any]:
        """DELETE /job/{job_id}: {"message": "Job cancelled successfully"}; 400 if finished."""
        return self._json("DELETE", f"/job/{_segment(job_id)}")

    def health(self) -> dict[str, Any]:
        """GET /health. An unhealthy gateway answers 503 with the same document: it is returned
        (not raised, not retried) so callers can show why; check body["status"]."""
        response = self._send("GET", "/health", retry=False, accept={503})
        return _json_body(response)

    def metrics(self) -> dict[str, Any]:
        """GET /metrics: job counts, queue length, average processing time, system load."""
        return self._json("GET", "/metrics")

    def restore(
        self,
        image: ImageSource,
        *,
        version: str = "1.4",
        upscale: int = 2,
        weight: float | None = None,
        only_center_face: bool | None = None,
        background_enhance: bool | None = None,
        face_detector_model: str | None = None,
        face_detector_score: float | None = None,
        filename: str | None = None,
        timeout_s: float = RESTORE_TIMEOUT_S,
    ) -> Restoration:
        """POST /restore: detect and restore every face of `image` (a path or encoded bytes).

        The server does the work inside this request, so its answer is awaited `timeout_s`
        seconds (connecting still has the client's own timeout). Options left None are not
        sent, so the server's defaults apply (weight 0.5, only_center_face and
        background_enhance false, detector mtcnn with score 0.9). Fetch the image with
        `download_restored` or `save_restored`.
        """
        form: dict[str, str | list[str]] = {"version": version, "upscale": str(upscale)}
        for name, value in (
            ("weight", weight),
            ("only_center_face", only_center_face),
            ("background_enhance", background_enhance),
            ("face_detector_model", face_detector_model),
            ("face_detector_score", face_detector_score),
        ):
            if value is not None:
                form[name] = _form_bool(value) if isinstance(value, bool) else str(value)
        body = self._json(
            "POST",
            "/restore",
            files={"file": _upload(image, filename)},
            data=form,
            timeout_s=timeout_s,
        )
        return Restoration.from_json(body)

    def download_restored(self, restoration: str | Restoration) -> bytes:
        """GET /download/{id}: the restored image's bytes. `restoration` is a Restoration, its
        restoration_id or its download_url (relative or absolute)."""
        return self._send("GET", _restoration_url(restoration)).content

    def save_restored(self, restoration: str | Restoration, dest: str | os.PathLike[str]) -> Path:
        """Stream a restored image to `dest` like `download` does (a directory: the server's
        name, <stem>_restored.<ext>, is used; written aside, then renamed). Returns its path."""
        return self.download(_restoration_url(restoration), dest)

    def submit_batch(
        self, image_urls: Iterable[str], settings: Mapping[str, Any] | None = None
    ) -> BatchAccepted:
        """POST /batch: restore the photos at public `image_urls`, fetched by the server.

        `settings` takes the GFPGAN API's keys (version, upscale, background_enhance, weight,
        only_center_face); None sends none, so the server's defaults apply.
        """
        if isinstance(image_urls, str):
            raise TypeError("image_urls is a list of URLs, not one string")
        urls = list(image_urls)
        if not urls:
            raise ValueError("a batch needs at least one image URL")
        payload: dict[str, Any] = {"image_urls": urls}
        if settings is not None:
            payload["settings"] = dict(settings)
        return BatchAccepted.from_json(self._json("POST", "/batch", json=payload))

    def batch_status(self, batch_id: str) -> dict[str, Any]:
        """GET /batch/{batch_id}/status: {status, progress, total, completed, failed, results
        (one per URL: its status, download_url or error, face counts), warning, ...}."""
        return self._json("GET", f"/batch/{_segment(batch_id)}/status")

    def quality(
        self,
        original: ImageSource,
        restored: ImageSource,
        metrics: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """POST /metrics: {metrics: {name: value}, analysis: {...}, ...} comparing `restored`
        with `original` (paths or encoded bytes). `metrics` None lets the server pick all it
        has (PSNR and SSIM on Facet); one it lacks is a BadRequestError listing those it has.
        """
        if isinstance(metrics, str):
            raise TypeError("metrics is a list of names, not one string")
        form: dict[str, str | list[str]] = {}
        if metrics is not None:
            form["metrics[]"] = list(metrics)
        files = {
            "original": _upload(original, None, default="original"),
            "restored": _upload(restored, None, default="restored"),
        }
        return self._json("POST", "/metrics", files=files, data=form)

    # The FaceFusion API (face swap) ----------------------------------------------------------

    def process_image(
        self,
        target: ImageSource,
        source: ImageSource | None = None,
        request: Mapping[str, Any] | None = None,
        *,
        filename: str | None = None,
        timeout_s: float = RESTORE_TIMEOUT_S,
        **options: Any,
    ) -> dict[str, Any]:
        """POST /process/image: swap the face of `source` into the faces of `target` (paths or
        encoded bytes) and/or enhance them, inside this request.

        `request` and `options` are ProcessRequest fields in FaceFusion's names (`processors`,
        `face_swapper_weight`, `face_selector_mode`, `output_image_scale`, ...), `options`
        overriding `request`; none at all lets the server run face_swapper with its defaults.
        Returns the seed's answer (job_id, status "completed", output_path) with Facet's
        processing_time, faces_detected, faces_processed, execution_providers and `warning`
        (a model used has synthetic weights). Fetch the file with `download_output`.
        """
        form = _process_form(target, source, _merged(request, options), filename)
        return _with_output(self._json("POST", "/process/image", timeout_s=timeout_s, **form))

    @overload
    def process_video(
        self,
        target: ImageSource,
        source: ImageSource | None = ...,
        request: Mapping[str, Any] | None = ...,
        *,
        asynchronous: Literal[False] = ...,
        filename: str | None = ...,
        timeout_s: float = ...,
        **options: Any,
    ) -> dict[str, Any]: ...

    @overload
    def process_video(
        self,
        target: ImageSource,
        source: ImageSource | None = ...,
        request: Mapping[str, Any] | None = ...,
        *,
        asynchronous: Literal[True],
        filename: str | None = ...,
        timeout_s: float = ...,
        **options: Any,
    ) -> str: ...

    def process_video(
        self,
        target: ImageSource,
        source: ImageSource | None = None,
        request: Mapping[str, Any] | None = None,
        *,
        asynchronous: bool = False,
        filename: str | None = None,
        timeout_s: float = VIDEO_TIMEOUT_S,
        **options: Any,
    ) -> dict[str, Any] | str:
        """POST /process/video: every frame of `target` (MP4, MOV, M4V, MKV, WebM or AVI; the
        audio and timestamps are kept) through the processors, options as `process_image`'s
        (`output_video_fps`, `output_video_scale`, ...).

        By default the seed's way: the answer comes once the video is done (awaited up to
        `timeout_s`), with `frames` among Facet's extras; JobFailedError when it ended failed.
        `asynchronous=True` queues a job instead and returns its id at once: follow it with
        `wait_for_video`.
        """
        fields = _merged(request, options)
        if "async" in fields:
            raise ValueError("pass asynchronous=True rather than 'async' in the request")
        if asynchronous:
            fields["async"] = True
        form = _process_form(target, source, fields, filename)
        body = self._json("POST", "/process/video", timeout_s=timeout_s, **form)
        if asynchronous:
            return str(_answer_field(body, "job_id", str, "video job"))
        return _completed(body)

    def wait_for_video(
        self,
        job_id: str,
        *,
        on_progress: StatusCallback | None = None,
        timeout_s: float = VIDEO_TIMEOUT_S,
        poll_interval_s: float = FIRST_POLL_S,
    ) -> dict[str, Any]:
        """Poll /status/{job_id} of an asynchronous video job until it completes, like `wait`.

        `on_progress` gets every status document (`progress` 0..100). Returns the last one:
        output_path and result_url, `outcome` (frames, faces_detected, faces_processed,
        execution_providers) and `warning`.
        """
        final = self.wait(
            job_id, timeout_s=timeout_s, progress=on_progress, poll_interval_s=poll_interval_s
        )
        return _with_output(final)

    def download_output(
        self, output: str, dest: str | os.PathLike[str], *, cleanup: bool = False
    ) -> Path:
        """GET /download/{filename}: stream an output to `dest` like `download` does.

        `output` is the file name, the answer's output_path or a status's result_url.
        `cleanup=True` has the server delete the output (and its job) once it has been sent.
        """
        url = f"/download/{_output_name(output)}"
        return self.download(f"{url}?cleanup=true" if cleanup else url, dest)

    def delete_output(self, output: str) -> dict[str, Any]:
        """DELETE /output/{filename}: {"message": "Output deleted", "filename": ...}; `output`
        as for `download_output`. NotFoundError when it is gone already."""
        return self._json("DELETE", f"/output/{_output_name(output)}")

    def processors(self) -> list[dict[str, Any]]:
        """GET /processors: [{name, available, warning?}, ...], available meaning that every
        model the processor calls is ready on the server now."""
        return _json_list(self._send("GET", "/processors"))

    # Image Context Extractor (/api/v1) ---------------------------------------------------------

    def upload_image(
        self,
        image: str | os.PathLike[str],
        *,
        process_immediately: bool = True,
        overwrite: bool = False,
        upload_dir: str = "uploads",
    ) -> dict[str, Any]:
        """POST /api/v1/images/upload: the file is stored in the server's media root and, with
        `process_immediately`, captioned, tagged and indexed; the answer's `image_info` has the
        caption and objects. BadRequestError with status 409 when the name is taken and
        `overwrite` is false."""
        path = Path(image)
        form: FormData = {
            "process_immediately": _form_bool(process_immediately),
            "overwrite": _form_bool(overwrite),
            "upload_dir": upload_dir,
        }
        with path.open("rb") as handle:
            files = {"file": (path.name, handle, "application/octet-stream")}
            return self._json("POST", "/api/v1/images/upload", files=files, data=form)

    def process_server_image(self, image_path: str, *, force: bool = False) -> dict[str, Any]:
        """POST /api/v1/images/process: a file already inside the server's media roots."""
        body = {"image_path": image_path, "force_reprocess": force}
        return self._json("POST", "/api/v1/images/process", json=body)

    def search_images(
        self,
        query: str,
        *,
        limit: int = 5,
        objects: Sequence[str] | None = None,
        min_score: float | None = None,
    ) -> list[dict[str, Any]]:
        """GET /api/v1/images/?query=…: the nearest indexed images, each with `score` (cosine,
        higher is nearer) and `distance` (1 − score)."""
        params: dict[str, Any] = {"query": query, "limit": limit}
        if objects:
            params["objects"] = ",".join(objects)
        if min_score is not None:
            params["min_score"] = min_score
        return _json_list(self._send("GET", "/api/v1/images/", params=params))

    def list_images(
        self, *, limit: int = 100, offset: int = 0, objects: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if objects:
            params["objects"] = ",".join(objects)
        return _json_list(self._send("GET", "/api/v1/images/", params=params))

    def delete_image(self, image_id: str, *, delete_file: bool = False) -> dict[str, Any]:
        params = {"delete_file": _form_bool(delete_file)}
        return self._json("DELETE", f"/api/v1/images/{_segment(image_id)}", params=params)

    # Transport -------------------------------------------------------------------------------

    def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        return _json_body(self._send(method, url, **kwargs))

    def _send(
        self,
        method: str,
        url: str,
        *,
        stream: bool = False,
        retry: bool = True,
        accept: frozenset[int] | set[int] = frozenset(),
        files: Mapping[str, Any] | None = None,
        data: FormData | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        """Send once, and again after Retry-After on 429/503 while retries remain.

        `timeout_s` replaces the client's read/write/pool timeouts for this request (not the
        connect timeout)."""
        options: dict[str, Any] = {}
        if timeout_s is not None:
            options["timeout"] = httpx.Timeout(timeout_s, connect=self._http.timeout.connect)
        attempt = 0
        while True:
            try:
                request = self._http.build_request(
                    method, url, files=files, data=data, json=json, params=params, **options
                )
                response = self._http.send(request, stream=stream)
            except httpx.HTTPError as exc:
                raise _transport_error(exc, self.base_url) from exc
            if response.is_success or response.status_code in accept:
                return response
            if stream:
                response.read()
                response.close()
            error = error_from_response(response)
            wait = self._retry_wait(error, attempt) if retry else None
            if wait is None:
                raise error
            self._sleep(wait)
            attempt += 1

    def _retry_wait(self, error: FacetClientError, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when this error must be raised now."""
        if error.status not in RETRY_STATUSES or attempt >= self.max_retries:
            return None
        wait = DEFAULT_RETRY_WAIT_S if error.retry_after is None else error.retry_after
        return None if wait > self.max_retry_wait_s else wait


def _upload(
    image: ImageSource, filename: str | None, *, default: str = "upload"
) -> tuple[str, bytes, str]:
    """One multipart file: (name, bytes, type). The gateway sniffs the format from the bytes."""
    if isinstance(image, bytes):
        return filename or default, image, "application/octet-stream"
    path = Path(image)
    return filename or path.name, path.read_bytes(), "application/octet-stream"


def _form_bool(value: bool) -> str:
    return "true" if value else "false"


def _restoration_url(restoration: str | Restoration) -> str:
    """A Restoration, a restoration_id or a download_url → the URL to GET."""
    if isinstance(restoration, Restoration):
        return restoration.download_url
    if restoration.startswith(("/", "http://", "https://")):
        return restoration
    return f"/download/{_segment(restoration)}"


def _field(body: Mapping[str, Any], key: str, kind: type[Any] | tuple[type[Any], ...]) -> Any:
    value = body[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{key!r} is {value!r}")
    return value


def _optional(body: Mapping[str, Any], key: str, kind: type[Any]) -> Any:
    return None if body.get(key) is None else _field(body, key, kind)


def _size(body: Mapping[str, Any], key: str) -> tuple[int, int]:
    value = body[key]
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise TypeError(f"{key!r} is {value!r}, not [width, height]")
    return int(value[0]), int(value[1])


def _merged(request: Mapping[str, Any] | None, options: Mapping[str, Any]) -> dict[str, Any]:
    return {**(request or {}), **options}


def _process_form(
    target: ImageSource,
    source: ImageSource | None,
    fields: Mapping[str, Any],
    filename: str | None,
) -> dict[str, Any]:
    """The FaceFusion API's form: `target`, `source` when given, the request as JSON (left out
    when empty, so the server's default request applies)."""
    files = {"target": _upload(target, filename, default="target")}
    if source is not None:
        files["source"] = _upload(source, None, default="source")
    if not fields:
        return {"files": files, "data": {}}
    # allow_nan=False: NaN and Infinity are not JSON, and the gateway refuses them.
    text = json.dumps(dict(fields), separators=(",", ":"), allow_nan=False)
    return {"files": files, "data": {"request": text}}


def _completed(body: dict[str, Any]) -> dict[str, Any]:
    """A synchronous video's answer, or JobFailedError when its job did not complete."""
    state = _answer_field(body, "status", str, "video")
    if state != "completed":
        job_id = str(body.get("job_id", ""))
        raise JobFailedError(f"job {job_id} {state}", job_id=job_id, job_status=state)
    return _with_output(body)


def _with_output(body: dict[str, Any]) -> dict[str, Any]:
    """A finished swap's answer, checked to name its output (what a caller downloads next)."""
    _answer_field(body, "output_path", str, "face swap")
    return body


def _answer_field(body: Mapping[str, Any], key: str, kind: type[Any], what: str) -> Any:
    try:
        return _field(body, key, kind)
    except KeyError:
        raise ServerError(f"the gateway's {what} answer lacks {key!r}") from None
    except TypeError as exc:
        raise ServerError(f"the gateway's {what} answer is malformed: {exc}") from None


def _output_name(output: str) -> str:
    """An output's file name, from itself, an output_path or a result_url, as one URL segment
    (names are server-made; never let one add a path)."""
    name = _last_segment(output)
    if name in ("", ".", ".."):
        raise ValueError(f"not an output name: {output!r}")
    return quote(name, safe="")


def _last_segment(url: str) -> str:
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def _segment(job_id: str) -> str:
    """A job id as one safe path segment (ids are server-made; never let one add a path)."""
    if not job_id or "/" in job_id or job_id in (".", ".."):
        raise ValueError(f"not a job id: {job_id!r}")
    return job_id


def _json_value(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ServerError(
            f"the gateway answered {response.status_code} without JSON",
            status=response.status_code,
        ) from exc


def _json_body(response: httpx.Response) -> dict[str, Any]:
    body = _json_value(response)
    if not isinstance(body, dict):
        raise ServerError("the gateway answered with unexpected JSON", status=response.status_code)
    return body


def _json_list(response: httpx.Response) -> list[dict[str, Any]]:
    body = _json_value(response)
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        raise ServerError("the gateway answered with unexpected JSON", status=response.status_code)
    return body


def _download_name(response: httpx.Response, url: str) -> str:
    match = _FILENAME.search(response.headers.get("content-disposition", ""))
    name = unquote(match.group(1)) if match else _last_segment(url)
    cleaned = Path(name.replace("\\", "/")).name
    return cleaned if cleaned not in ("", ".", "..") else "result"


def _transport_error(exc: httpx.HTTPError, base_url: str) -> FacetClientError:
    if isinstance(exc, httpx.TimeoutException):
        return DeadlineExceededError(f"the gateway at {base_url} did not answer in time ({exc})")
    return UnavailableError(f"cannot reach the gateway at {base_url}: {exc}")
