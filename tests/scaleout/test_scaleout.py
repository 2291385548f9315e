"""Scale-out without Docker: PostgreSQL and Redis (scripts/pg.sh, scripts/redis.sh), two
embedded Tritons and two gateways sharing them, one gateway and one Triton killed with SIGKILL
under load. `make scaleout-test` runs this file alone; `make test` runs it with the rest.

What it shows: every job ends `completed` or `failed` with a reason, none is lost and none runs
twice at once (a job's attempts stay within the setting, and the shared results folder holds one
file per completed job); the survivors keep serving; a client's rate limit is one count over
both gateways."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from PIL import Image

from serving.gateway_process import SettingValue
from serving.launcher import TritonServer
from tests.e2e.conftest import Gateway, make_gateway, photo_bytes
from tests.integration.conftest import (  # noqa: F401 (fixtures used by this module)
    start_triton,
    tiny_sr_repository,
)

pytestmark = pytest.mark.integration

JOBS = 24
ATTEMPTS = 2
LEASE_S = 3.0
OTHER_LIMIT = 10  # requests per minute on the "other" group, per client, over all gateways
TERMINAL = {"completed", "failed", "cancelled"}
INPUT_SIZE = (160, 120)  # many tiles of 32 px: a job takes long enough to be caught mid-run


@dataclass
class Stack:
    tritons: list[TritonServer]
    gateways: list[Gateway]
    shared: Path
    postgres_url: str
    table_owner_of: dict[str, str]

    def client(self, index: int, client_ip: str = "10.0.0.1") -> httpx.Client:
        # The gateways trust 127.0.0.1 as a proxy: X-Forwarded-For names the client.
        return httpx.Client(
            base_url=self.gateways[index].url,
            timeout=30,
            headers={"X-Forwarded-For": client_ip},
        )


@pytest.fixture(scope="module")
def stack(
    start_triton,  # noqa: F811
    tiny_sr_repository: Path,  # noqa: F811
    postgres_url: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    tritons = [start_triton(tiny_sr_repository) for _ in range(2)]
    shared = tmp_path_factory.mktemp("shared")
    _clear_shared_state(postgres_url, redis_url)
    settings: dict[str, SettingValue] = {
        "triton_grpc_urls": json.dumps([t.grpc_url for t in tritons]),
        "job_store": "postgres",
        "postgres_url": postgres_url,
        "redis_url": redis_url,
        "shared_dir": str(shared),
        "trusted_proxies": json.dumps(["127.0.0.1"]),
        "job_lease_s": LEASE_S,
        "job_attempts": ATTEMPTS,
        "job_workers": 1,
        "max_pending_jobs": 1000,
        "rate_limits_enabled": True,
        "rate_limit_upscale": 1000,
        "rate_limit_status": 100_000,
        "rate_limit_other": OTHER_LIMIT,
    }
    gateways = []
    for index in range(2):
        root = tmp_path_factory.mktemp(f"gateway{index}")
        gateway = make_gateway(tritons[0], root, **settings)
        gateway.start()
        gateways.append(gateway)
    owners = {}
    for index, gateway in enumerate(gateways):
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            health = _polled_health(client)
            owners[health["state"]["instance"]] = f"gateway{index}"
    yield Stack(tritons, gateways, shared, postgres_url, owners)
    for gateway in gateways:
        gateway.stop()
    for triton in tritons:
        triton.stop()


def _polled_health(client: httpx.Client, timeout_s: float = 30) -> dict[str, Any]:
    """/health once a readiness poll has asked both Tritons (endpoints start out optimistic)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        health: dict[str, Any] = client.get("/health").json()
        if health["triton"].get("checked_at") and len(health["triton"]["endpoints"]) == 2:
            return health
        time.sleep(0.2)
    raise AssertionError("no readiness poll in time")


def _clear_shared_state(postgres_url: str, redis_url: str) -> None:
    """A session's servers are shared with other tests: start from an empty job table and
    queue, so the counts below are this module's alone."""
    import redis

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS facet_jobs")
    redis.Redis.from_url(redis_url).flushdb()


def test_each_gateway_reports_the_shared_state_it_connected_to(stack: Stack) -> None:
    for index in range(2):
        with stack.client(index) as client:
            health = client.get("/health").json()
        state = health["state"]
        assert state["jobs"] == {"backend": "postgres", "connected": True}
        assert state["queue"] == {"backend": "redis", "connected": True}
        assert state["rate_limits"] == {"backend": "redis", "connected": True}
        assert state["files"] == {"backend": "shared", "connected": True}
        assert health["redis"] == "connected"
        assert [e["ready"] for e in health["triton"]["endpoints"]] == [True, True]


def test_a_client_s_rate_limit_is_one_count_over_both_gateways(stack: Stack) -> None:
    answers = []
    for request in range(OTHER_LIMIT):
        with stack.client(request % 2, client_ip="10.9.0.1") as client:
            answers.append(client.get("/metrics").status_code)
    assert answers == [200] * OTHER_LIMIT, "each gateway alone saw only half the limit"
    for index in range(2):
        with stack.client(index, client_ip="10.9.0.1") as client:
            refused = client.get("/metrics")
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
    with stack.client(0, client_ip="10.9.0.2") as client:
        assert client.get("/metrics").status_code == 200, "another client has its own count"


def test_jobs_outlive_a_gateway_and_a_triton_killed_mid_load(stack: Stack) -> None:
    image = photo_bytes(INPUT_SIZE)
    job_ids = []
    for index in range(JOBS):
        with stack.client(index % 2) as client:
            answer = client.post(
                "/upscale",
                files={"file": (f"photo{index}.png", image, "image/png")},
                data={"scale": "2", "face_enhance": "false"},
            )
        assert answer.status_code == 200, answer.text
        job_ids.append(answer.json()["job_id"])

    victim_owner = _owner_of("gateway0", stack)
    held = _wait_until_running_under(stack.postgres_url, victim_owner)
    stack.gateways[0].kill()
    stack.tritons[0].kill()

    finals = _wait_until_all_terminal(stack, job_ids, timeout_s=180)
    assert set(finals) == set(job_ids), "no job lost"
    for job_id, body in finals.items():
        assert body["status"] in ("completed", "failed"), body
        if body["status"] == "failed":
            assert body.get("error"), f"job {job_id} failed without a reason"
    completed = [job_id for job_id, body in finals.items() if body["status"] == "completed"]
    assert len(completed) >= JOBS - len(held), "only jobs caught mid-run may run out of attempts"

    rows = _rows(stack.postgres_url, job_ids)
    assert all(row["attempts"] <= ATTEMPTS for row in rows.values()), "no job ran beyond its cap"
    assert all(rows[job_id]["attempts"] == 2 for job_id in held if job_id in completed), (
        "a job the dead gateway held was taken over and run once more"
    )
    results = sorted(p.name for p in (stack.shared / "results").iterdir())
    assert len(results) == len(completed), "one result file per completed job, no duplicate"

    with stack.client(1) as client:
        for job_id in completed[:3]:
            download = client.get(finals[job_id]["result_url"])
            assert download.status_code == 200
            width, height = Image.open(io.BytesIO(download.content)).size
            assert (width, height) == (INPUT_SIZE[0] * 2, INPUT_SIZE[1] * 2)


def test_the_survivors_keep_serving_after_the_kills(stack: Stack) -> None:
    with stack.client(1, client_ip="10.0.0.7") as client:
        health = client.get("/health").json()
        assert health["status"] == "healthy"
        assert [e["ready"] for e in health["triton"]["endpoints"]] == [False, True]
        answer = client.post(
            "/upscale",
            files={"file": ("late.png", photo_bytes((40, 30)), "image/png")},
            data={"scale": "2", "face_enhance": "false"},
        )
        assert answer.status_code == 200, answer.text
        job_id = answer.json()["job_id"]
    finals = _wait_until_all_terminal(stack, [job_id], timeout_s=60)
    assert finals[job_id]["status"] == "completed", finals[job_id]


def _owner_of(name: str, stack: Stack) -> str:
    return next(owner for owner, gateway in stack.table_owner_of.items() if gateway == name)


def _wait_until_running_under(postgres_url: str, owner: str, timeout_s: float = 60) -> list[str]:
    """The ids of the jobs `owner` runs, once it runs one (the moment to kill it)."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            rows = conn.execute(
                "SELECT id FROM facet_jobs WHERE status = 'processing'"
                " AND lease_owner LIKE '%%:' || %s",
                (owner,),
            ).fetchall()
            if rows:
                return [row[0] for row in rows]
            time.sleep(0.02)
    raise AssertionError(f"{owner} never ran a job")


def _wait_until_all_terminal(
    stack: Stack, job_ids: list[str], timeout_s: float
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    finals: dict[str, dict[str, Any]] = {}
    with stack.client(1) as client:
        while time.monotonic() < deadline and len(finals) < len(job_ids):
            for job_id in job_ids:
                if job_id in finals:
                    continue
                body = client.get(f"/status/{job_id}").json()
                if body.get("status") in TERMINAL:
                    finals[job_id] = body
            time.sleep(0.2)
    missing = [job_id for job_id in job_ids if job_id not in finals]
    assert not missing, f"jobs never ended: {missing}"
    return finals


def _rows(postgres_url: str, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        cursor = conn.execute(
            "SELECT id, attempts, status FROM facet_jobs WHERE id = ANY(%s)", (job_ids,)
        )
        return {row[0]: {"attempts": row[1], "status": row[2]} for row in cursor.fetchall()}
