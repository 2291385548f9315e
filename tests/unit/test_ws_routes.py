"""The WebSocket endpoints end to end, through Starlette's TestClient, on a minimal app."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from gateway.errors import Unavailable
from gateway.ws import Hub, SearchFn, WsLimits, ws_router
from gateway.ws.events import image_processed, task_completed, task_progress

QUIET = WsLimits(heartbeat_s=None)  # no unsolicited heartbeats in the tests' message streams


async def two_results(
    query: str, limit: int, objects: list[str] | None, min_score: float | None
) -> list[dict[str, Any]]:
    results = [{"id": f"{query}-{n}", "objects": objects, "score": 0.9} for n in range(2)]
    return results[:limit]


@contextmanager
def serve(
    limits: WsLimits = QUIET, search: SearchFn = two_results
) -> Iterator[tuple[TestClient, Hub]]:
    hub = Hub()
    app = FastAPI()
    app.include_router(ws_router(hub, search, limits))
    with TestClient(app) as client:  # one event loop for every connection of the test
        yield client, hub


def on_loop(client: TestClient, work: Callable[[], object]) -> None:
    """Run `work` on the app's event loop, in one go: no client is served meanwhile."""
    assert client.portal is not None
    client.portal.call(work)


def test_connecting_announces_the_client_and_its_channel():
    with serve() as (client, _), client.websocket_connect("/ws") as ws:
        hello = ws.receive_json()
    assert hello["type"] == "connection_established"
    assert hello["channel"] == "general" and hello["subscriptions"] == ["general"]
    assert set(hello["available_channels"]) >= {"general", "processing", "search"}
    assert hello["client_id"] and hello["timestamp"]


def test_a_ping_is_answered_with_a_pong_and_a_timestamp():
    with serve() as (client, _), client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "ping"})
        pong = ws.receive_json()
    assert pong["type"] == "pong" and pong["timestamp"].endswith("+00:00")


def test_the_seeds_example_subscribes_to_processing_and_receives_its_events():
    with serve() as (client, hub), client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "subscribe", "channel": "processing"})
        subscribed = ws.receive_json()
        hub.publish_threadsafe("processing", task_progress("t1", "processing", 65.5, "33 of 50"))
        event = ws.receive_json()
        ws.send_json({"type": "unsubscribe", "channel": "processing"})
        assert ws.receive_json()["type"] == "unsubscribed"
        hub.publish_threadsafe("processing", task_completed("t1", {}))  # not for it any more
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"
    assert (subscribed["type"], subscribed["channel"]) == ("subscribed", "processing")
    assert event["type"] == "task_progress"
    assert (event["task_id"], event["status"], event["progress"]) == ("t1", "processing", 65.5)
    assert event["message"] == "33 of 50"


def test_the_processing_endpoint_receives_task_events_in_order():
    with serve() as (client, hub), client.websocket_connect("/ws/processing") as ws:
        assert ws.receive_json()["channel"] == "processing"
        for event in (
            task_progress("t", "processing", 50),
            image_processed("img1", filename="a.jpg", caption="a cat"),
            task_completed("t", {"processed": 1}),
        ):
            hub.publish_threadsafe("processing", event)
        received = [ws.receive_json() for _ in range(3)]
    assert [event["type"] for event in received] == [
        "task_progress",
        "image_processed",
        "task_completed",
    ]
    assert received[1]["caption"] == "a cat" and received[2]["result"] == {"processed": 1}


def test_subscribing_to_an_unknown_channel_is_answered_with_an_error():
    with serve() as (client, _), client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "subscribe", "channel": "nowhere"})
        error = ws.receive_json()
    assert error["type"] == "error" and "nowhere" in error["message"]


def test_a_search_answers_with_results_count_and_search_time():
    with serve() as (client, _), client.websocket_connect("/ws/search") as ws:
        ws.receive_json()
        ws.send_json(
            {"type": "search", "query": "cats", "limit": 5, "objects": "cat,dog", "min_score": 0.2}
        )
        answer = ws.receive_json()
    assert answer["type"] == "search_results" and answer["query"] == "cats"
    assert answer["count"] == 2 and len(answer["results"]) == 2
    assert answer["results"][0]["objects"] == ["cat", "dog"]
    assert isinstance(answer["search_time"], float)


def test_a_search_failing_with_a_gateway_error_answers_its_detail():
    async def unavailable(*_: Any) -> list[dict[str, Any]]:
        raise Unavailable("the embedding model is not ready")

    with serve(search=unavailable) as (client, _), client.websocket_connect("/ws/search") as ws:
        ws.receive_json()
        ws.send_json({"type": "search", "query": "cats"})
        error = ws.receive_json()
    assert error == {
        "type": "error",
        "message": "the embedding model is not ready",
        "timestamp": error["timestamp"],
    }


@pytest.mark.parametrize(
    "outcome", [RuntimeError("index corrupt"), [{"id": object()}], None], ids=str
)
def test_a_search_that_breaks_answers_search_failed_and_the_connection_stays(outcome):
    async def broken(*_: Any) -> Any:
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    with serve(search=broken) as (client, _), client.websocket_connect("/ws/search") as ws:
        ws.receive_json()
        ws.send_json({"type": "search", "query": "cats"})
        error = ws.receive_json()
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"
    assert (error["type"], error["message"]) == ("error", "search failed")  # no internals


def test_a_newer_search_supersedes_one_still_running():
    started, cancelled = threading.Event(), threading.Event()

    async def search(query: str, *_: Any) -> list[dict[str, Any]]:
        if query == "ca":
            started.set()
            try:
                await asyncio.Event().wait()  # never answers by itself
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return [{"id": query}]

    with serve(search=search) as (client, _), client.websocket_connect("/ws/search") as ws:
        ws.receive_json()
        ws.send_json({"type": "search", "query": "ca"})
        assert started.wait(5)
        ws.send_json({"type": "search", "query": "cats"})
        answer = ws.receive_json()
        assert cancelled.wait(5)
        ws.send_json({"type": "ping"})
        after = ws.receive_json()
    assert answer["query"] == "cats" and answer["results"] == [{"id": "cats"}]
    assert after["type"] == "pong"  # nothing ever came for "ca"


def test_search_is_answered_on_ws_search_only():
    with serve() as (client, _), client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "search", "query": "cats"})
        error = ws.receive_json()
    assert error["type"] == "error" and "/ws/search" in error["message"]


@pytest.mark.parametrize("binary", [False, True])
def test_an_oversized_message_closes_the_connection_with_1009(binary):
    limits = WsLimits(max_message_bytes=64, heartbeat_s=None)
    with serve(limits) as (client, _), client.websocket_connect("/ws") as ws:
        ws.receive_json()
        if binary:
            ws.send_bytes(b"\0" * 65)
        else:
            ws.send_text('{"type": "ping", "pad": "' + "é" * 20 + '"}')  # 47 chars, 67 bytes
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1009 and "64 bytes" in closed.value.reason


def test_connections_past_the_limit_are_closed_with_1013_and_counted():
    with serve(WsLimits(max_connections=1, heartbeat_s=None)) as (client, _):
        with client.websocket_connect("/ws") as first:
            first.receive_json()
            with (
                client.websocket_connect("/ws/search") as second,
                pytest.raises(WebSocketDisconnect) as refused,
            ):
                second.receive_json()
            first.send_json({"type": "ping"})
            assert first.receive_json()["type"] == "pong"  # the first one is unaffected
        with client.websocket_connect("/ws/search") as third:  # room again
            assert third.receive_json()["type"] == "connection_established"
        stats = client.get("/ws/stats").json()
    assert refused.value.code == 1013 and "try again later" in refused.value.reason
    assert stats["connections_rejected"] == 1 and stats["connections_accepted"] == 2


@pytest.mark.parametrize(
    "send",
    [
        lambda ws: ws.send_text("{not json"),
        lambda ws: ws.send_text("[1, 2]"),
        lambda ws: ws.send_json({"type": "dance"}),
        lambda ws: ws.send_json({"no": "type"}),
        lambda ws: ws.send_bytes(b'{"type": "ping"}'),
    ],
    ids=["bad-json", "not-an-object", "unknown-type", "no-type", "binary"],
)
def test_invalid_messages_are_answered_with_an_error_and_the_connection_stays_open(send):
    with serve() as (client, _), client.websocket_connect("/ws") as ws:
        ws.receive_json()
        send(ws)
        error = ws.receive_json()
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"
    assert error["type"] == "error" and error["message"]


def test_a_client_sending_only_garbage_is_closed_with_1008():
    limits = WsLimits(max_bad_messages=3, heartbeat_s=None)
    with serve(limits) as (client, _), client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_text("x")
        ws.send_text("x")
        ws.send_json({"type": "ping"})  # a valid message starts the count again
        ws.send_text("x")
        ws.send_text("x")
        replies = [ws.receive_json()["type"] for _ in range(5)]
        ws.send_text("x")
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert replies == ["error", "error", "pong", "error", "error"]
    assert closed.value.code == 1008


def test_a_lagging_client_keeps_the_newest_progress_and_every_final_event():
    with serve(WsLimits(max_queue=3, heartbeat_s=None)) as (client, hub):
        with client.websocket_connect("/ws/processing") as ws:
            ws.receive_json()

            def burst() -> None:  # faster than any writer: all of it before one send
                for percent in range(1, 21):
                    hub.publish("processing", task_progress("a", "processing", percent))
                hub.publish("processing", task_completed("a", {"ok": True}))
                for percent in range(1, 6):
                    hub.publish("processing", task_progress("b", "processing", percent))

            on_loop(client, burst)
            ws.send_json({"type": "ping"})
            received = []
            while (event := ws.receive_json())["type"] != "pong":
                received.append(event)
        stats = client.get("/ws/stats").json()
    kinds = [(event["type"], event["task_id"], event.get("progress")) for event in received]
    assert kinds.count(("task_completed", "a", None)) == 1
    assert kinds[-1] == ("task_progress", "b", 5)  # the newest progress of b survived
    a_progress = [
        percent for kind, task, percent in kinds if (kind, task) == ("task_progress", "a")
    ]
    assert a_progress == sorted(a_progress) and len(a_progress) < 20
    assert stats["events_dropped"] == 20 + 5 + 1 - len(received)
    assert stats["slow_clients_disconnected"] == 0


def test_a_client_too_slow_for_its_final_events_is_closed_with_1013():
    with serve(WsLimits(max_queue=2, heartbeat_s=None)) as (client, hub):
        with client.websocket_connect("/ws/processing") as ws:
            ws.receive_json()

            def burst() -> None:
                for task in ("a", "b", "c"):
                    hub.publish("processing", task_completed(task, None))

            on_loop(client, burst)
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
        stats = client.get("/ws/stats").json()
    assert closed.value.code == 1013
    assert stats["slow_clients_disconnected"] == 1 and stats["connections"] == 0


def test_ws_stats_counts_connections_channels_and_messages():
    with serve() as (client, _):
        with (
            client.websocket_connect("/ws") as general,
            client.websocket_connect("/ws/processing") as processing,
        ):
            general.receive_json()
            processing.receive_json()
            general.send_json({"type": "subscribe", "channel": "search"})
            general.receive_json()
            live = client.get("/ws/stats").json()
        after = client.get("/ws/stats").json()
    assert live["connections"] == 2 and live["max_connections"] == QUIET.max_connections
    assert live["channels"] == {"general": 1, "processing": 1, "search": 1}
    assert live["messages_sent"] == 3  # two greetings and one "subscribed"
    assert (after["connections"], after["channels"]["general"]) == (0, 0)
    assert after["connections_accepted"] == 2 and after["connections_rejected"] == 0
    assert {"events_dropped", "events_published", "timestamp"} <= set(after)


def test_a_heartbeat_goes_out_when_nothing_else_did():
    with serve(WsLimits(heartbeat_s=0.05)) as (client, _), client.websocket_connect("/ws") as ws:
        ws.receive_json()
        heartbeat = ws.receive_json()
    assert heartbeat["type"] == "heartbeat"


def test_a_silent_client_is_closed_once_an_idle_timeout_is_set():
    limits = WsLimits(idle_timeout_s=0.05, heartbeat_s=None)
    with serve(limits) as (client, _), client.websocket_connect("/ws") as ws:
        ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1000 and closed.value.reason == "idle timeout"
