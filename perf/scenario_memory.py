"""The memory scenario's active part: the gateway's RSS before and after many small requests
(perf.leakcheck). Peak RSS of Triton and the gateway is sampled during the whole run by the
stack's sampler, whatever the scenarios."""

from __future__ import annotations

from typing import Final

from perf.budget import SkipStep, Step
from perf.gateway_paths import http_client, wait_for_job
from perf.leakcheck import SmallRequests, run_leak_check
from perf.photos import encode_jpeg, square_photo
from perf.realistic_context import Context

KNOWN_JOB_SIDE: Final = 32
SECONDS_PER_REQUEST: Final = 0.02  # a guess for the budget: small requests on a busy 2-core box


def known_job(client: object, poll_s: float) -> str:
    """A completed upscale job of a 32² photo, whose status the check asks for (one tile of
    model time, once)."""
    image = encode_jpeg(square_photo("astronaut", KNOWN_JOB_SIDE))
    submitted = client.post(  # type: ignore[attr-defined]
        "/upscale", files={"file": ("tiny.jpg", image, "image/jpeg")}, data={"scale": "4"}
    )
    submitted.raise_for_status()
    job_id = str(submitted.json()["job_id"])
    wait_for_job(client, job_id, poll_s)
    return job_id


def check(ctx: Context) -> None:
    pid = ctx.stack.gateway_pid()
    if pid is None:
        raise SkipStep("the gateway is not running")
    with http_client(ctx.gateway_url(ctx.options.sweep_model)) as client:
        job_id = known_job(client, ctx.options.poll_interval_s)
        requests = SmallRequests(client, job_id)
        ctx.leak = run_leak_check(
            requests.send,
            pid,
            requests=ctx.options.leak_requests,
            warmup=ctx.options.leak_warmup,
        )


def steps(ctx: Context) -> list[Step]:
    count = ctx.options.leak_requests + ctx.options.leak_warmup
    return [
        Step(
            f"memory: gateway RSS around {ctx.options.leak_requests:,} small requests",
            lambda: check(ctx),
            lambda: count * SECONDS_PER_REQUEST + 5.0,
        )
    ]
