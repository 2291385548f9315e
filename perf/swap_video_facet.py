"""Facet's way: the clip and the source photo uploaded to POST /process/video as a FaceFusion
client sends them (`"async": true`), /status polled until the job ends, the result downloaded.
Also: what a written video holds (frames, audio), read back with PyAV."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import av

HTTP_TIMEOUT_S: Final = 600.0
JOB_TIMEOUT_S: Final = 3 * 3600.0
REQUEST: Final = {"processors": ["face_swapper"], "async": True}


@dataclass(frozen=True)
class FacetOutcome:
    wall_s: float  # upload → the finished status seen (download excluded)
    download_s: float
    status: dict[str, Any]  # the last /status answer
    output: Path

    @property
    def outcome(self) -> dict[str, Any]:
        found = self.status.get("outcome") or {}
        return dict(found)


class JobFailed(RuntimeError):
    pass


def swap_through_gateway(
    base_url: str, clip: Path, source_jpeg: bytes, output: Path, *, poll_s: float
) -> FacetOutcome:
    import httpx

    with httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT_S) as client:
        started = time.perf_counter()
        files = {
            "target": (clip.name, clip.read_bytes(), "video/mp4"),
            "source": ("source.jpg", source_jpeg, "image/jpeg"),
        }
        answer = client.post("/process/video", files=files, data={"request": json.dumps(REQUEST)})
        if answer.status_code != 200:
            raise JobFailed(f"POST /process/video answered {answer.status_code}: {answer.text}")
        job_id = answer.json()["job_id"]
        deadline = time.monotonic() + JOB_TIMEOUT_S
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = client.get(f"/status/{job_id}").json()
            if status.get("status") in ("completed", "failed", "cancelled"):
                break
            time.sleep(poll_s)
        wall = time.perf_counter() - started
        if status.get("status") != "completed":
            raise JobFailed(f"job {job_id} ended {status.get('status')}: {status.get('error')}")
        started = time.perf_counter()
        download = client.get(str(status["result_url"]))
        download.raise_for_status()
        output.write_bytes(download.content)
        return FacetOutcome(wall, time.perf_counter() - started, status, output)


def describe_video(path: Path) -> dict[str, Any]:
    """Frames, size, codec and audio of a written video (what a player would find)."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        audio = container.streams.audio
        return {
            "frames": frames,
            "size": [video.codec_context.width, video.codec_context.height],
            "video_codec": video.codec_context.name,
            "audio": audio[0].codec_context.name if audio else None,
            "bytes": path.stat().st_size,
        }
