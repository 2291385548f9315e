"""The WebSocket hub's own logic: bounded queues and their drop rules, channels, counters."""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from gateway.ws.events import prepare, task_completed, task_failed, task_progress
from gateway.ws.hub import SLOW_CLIENT_REASON, Client, Hub, UnknownChannel
from gateway.ws.limits import WsLimits
from gateway.ws.outbox import CloseRequest, Kind, Outbox, Outgoing, PutResult
from gateway.ws.protocol import ProtocolError, decode, message_size, search_request


def progress(task_id: str, percent: float) -> Outgoing:
    return prepare(task_progress(task_id, "processing", percent, f"{percent}%"))


def completed(task_id: str) -> Outgoing:
    return prepare(task_completed(task_id, {"processed": 1}))


def reply() -> Outgoing:
    return prepare({"type": "pong"})


def bodies(outbox: Outbox) -> list[dict[str, Any]]:
    return [json.loads(item.text) for item in outbox.pending()]


def summary(outbox: Outbox) -> list[tuple[str, str | None, float | None]]:
    return [(body["type"], body.get("task_id"), body.get("progress")) for body in bodies(outbox)]


def on_loop(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(body())


def admit(hub: Hub, channel: str = "processing", queue_size: int = 8) -> Client:
    client = hub.admit(channel, max_connections=100, queue_size=queue_size)
    assert client is not None
    return client


# The outbox


def test_every_message_is_queued_in_order_while_there_is_room():
    outbox = Outbox(4)
    for item in (progress("a", 10), progress("a", 20), reply(), completed("a")):
        assert outbox.put(item) is PutResult.QUEUED
    assert summary(outbox) == [
        ("task_progress", "a", 10),
        ("task_progress", "a", 20),
        ("pong", None, None),
        ("task_completed", "a", None),
    ]
    assert outbox.dropped == 0


def test_a_full_queue_keeps_only_the_newest_progress_of_each_task():
    outbox = Outbox(3)
    for item in (progress("a", 10), progress("b", 10), progress("a", 20)):
        outbox.put(item)
    assert outbox.put(progress("a", 30)) is PutResult.REPLACED
    assert summary(outbox) == [("task_progress", "b", 10), ("task_progress", "a", 30)]
    assert outbox.dropped == 2


def test_a_full_queue_drops_the_progress_of_a_task_with_none_waiting():
    outbox = Outbox(2)
    outbox.put(progress("a", 10))
    outbox.put(reply())
    assert outbox.put(progress("b", 50)) is PutResult.DROPPED
    assert summary(outbox) == [("task_progress", "a", 10), ("pong", None, None)]
    assert outbox.dropped == 1


def test_a_full_queue_makes_room_for_another_tasks_progress_by_dropping_stale_progress():
    outbox = Outbox(3)
    for item in (progress("a", 10), progress("a", 20), reply()):
        outbox.put(item)
    assert outbox.put(progress("b", 5)) is PutResult.EVICTED
    assert summary(outbox) == [
        ("task_progress", "a", 20),
        ("pong", None, None),
        ("task_progress", "b", 5),
    ]
    assert outbox.dropped == 1


def test_progress_followed_by_its_tasks_final_event_is_stale():
    outbox = Outbox(3)
    for item in (progress("a", 90), completed("a"), progress("b", 1)):
        outbox.put(item)
    assert outbox.put(progress("c", 1)) is PutResult.EVICTED
    assert summary(outbox) == [
        ("task_completed", "a", None),
        ("task_progress", "b", 1),
        ("task_progress", "c", 1),
    ]


def test_a_final_event_replaces_the_waiting_progress_of_its_own_task_first():
    outbox = Outbox(3)
    for item in (progress("a", 10), progress("b", 10), progress("b", 20)):
        outbox.put(item)
    assert outbox.put(completed("b")) is PutResult.REPLACED
    assert summary(outbox) == [("task_progress", "a", 10), ("task_completed", "b", None)]
    assert outbox.dropped == 2


def test_a_final_event_evicts_the_oldest_progress_when_its_task_has_none_waiting():
    outbox = Outbox(3)
    for item in (reply(), progress("a", 10), progress("b", 10)):
        outbox.put(item)
    assert outbox.put(prepare(task_failed("c", "boom"))) is PutResult.EVICTED
    assert summary(outbox) == [
        ("pong", None, None),
        ("task_progress", "b", 10),
        ("task_failed", "c", None),
    ]


def test_a_final_event_is_never_dropped_it_overflows_when_nothing_can_make_room():
    outbox = Outbox(2)
    outbox.put(completed("a"))
    outbox.put(reply())
    assert outbox.put(completed("b")) is PutResult.OVERFLOW
    assert outbox.put(reply()) is PutResult.OVERFLOW
    assert outbox.dropped == 0
    assert len(outbox) == 2


def test_a_progress_event_marked_final_is_never_dropped():
    outbox = Outbox(1)
    outbox.put(progress("a", 10))
    marked = prepare({**task_progress("a", "processing", 100), "final": True})
    assert marked.kind is Kind.FINAL
    assert outbox.put(marked) is PutResult.REPLACED
    assert summary(outbox) == [("task_progress", "a", 100)]


def test_a_closing_outbox_discards_what_waits_and_takes_nothing_more():
    outbox = Outbox(2)
    outbox.put(reply())
    outbox.close(1009, "too big")
    outbox.close(1000, "second request is ignored")
    assert outbox.put(completed("a")) is PutResult.CLOSED
    assert len(outbox) == 0
    assert asyncio.run(outbox.get()) == CloseRequest(1009, "too big")


def test_get_wakes_up_when_a_message_is_queued_and_times_out_when_none_is():
    async def body() -> None:
        outbox = Outbox(2)
        assert await outbox.get(timeout=0.01) is None
        waiting = asyncio.create_task(outbox.get())
        await asyncio.sleep(0)  # let it wait
        item = reply()
        outbox.put(item)
        assert await waiting is item

    on_loop(body)


# Events


def test_events_get_a_utc_iso_timestamp_unless_they_carry_one():
    stamped = json.loads(prepare({"type": "image_processed", "image_id": "x"}).text)
    assert stamped["timestamp"].endswith("+00:00") and "T" in stamped["timestamp"]
    kept = json.loads(prepare({"type": "x", "timestamp": "2025-07-07T10:36:13"}).text)
    assert kept["timestamp"] == "2025-07-07T10:36:13"


def test_events_are_classed_by_type_and_keyed_by_task():
    assert progress("7", 1).kind is Kind.PROGRESS and progress("7", 1).task_id == "7"
    assert prepare({"type": "task_progress", "task_id": 7}).task_id == "7"
    assert completed("7").kind is Kind.FINAL
    assert prepare(task_failed("7", "x")).kind is Kind.FINAL
    assert prepare({"type": "image_processed", "image_id": "i"}).kind is Kind.OTHER


@pytest.mark.parametrize("event", [{}, {"type": ""}, {"type": 3}, {"type": "x", "v": math.nan}])
def test_events_without_a_type_or_not_json_are_refused_at_publish(event):
    with pytest.raises(ValueError):
        prepare(event)


def test_progress_is_a_percentage_clamped_to_0_100():
    assert task_progress("t", "processing", 65.5)["progress"] == 65.5
    assert task_progress("t", "processing", 100.0000001)["progress"] == 100
    assert task_progress("t", "processing", -3)["progress"] == 0


# The hub


def test_a_client_starts_on_its_endpoints_channel_and_may_subscribe_to_others():
    async def body() -> None:
        hub = Hub()
        client = admit(hub, "general")
        hub.subscribe(client, "processing")
        assert client.subscriptions == {"general", "processing"}
        assert hub.stats().channels == {"general": 1, "processing": 1, "search": 0}
        hub.unsubscribe(client, "general")
        assert hub.stats().channels == {"general": 0, "processing": 1, "search": 0}
        with pytest.raises(UnknownChannel):
            hub.subscribe(client, "nope")

    on_loop(body)


def test_an_event_reaches_only_the_subscribers_of_its_channel():
    async def body() -> None:
        hub = Hub()
        listener, other = admit(hub, "processing"), admit(hub, "search")
        assert hub.publish("processing", task_progress("t", "processing", 5)) == 1
        assert [body["type"] for body in bodies(listener.outbox)] == ["task_progress"]
        assert len(other.outbox) == 0
        with pytest.raises(UnknownChannel):
            hub.publish("elsewhere", {"type": "x"})

    on_loop(body)


def test_admission_stops_at_the_connection_limit_and_counts_the_refusals():
    async def body() -> None:
        hub = Hub()
        first = hub.admit("general", max_connections=1, queue_size=4)
        assert first is not None
        assert hub.admit("search", max_connections=1, queue_size=4) is None
        hub.remove(first)
        assert hub.admit("search", max_connections=1, queue_size=4) is not None
        stats = hub.stats()
        assert (stats.connections, stats.connections_accepted, stats.connections_rejected) == (
            1,
            2,
            1,
        )
        assert stats.channels["general"] == 0

    on_loop(body)


def test_drops_are_counted_per_client_and_in_total():
    async def body() -> None:
        hub = Hub()
        slow, fast = admit(hub, queue_size=1), admit(hub, queue_size=10)
        for percent in (10, 20, 30):
            hub.publish("processing", task_progress("t", "processing", percent))
        hub.publish("processing", task_progress("u", "processing", 1))
        assert (slow.dropped, fast.dropped) == (3, 0)
        assert summary(slow.outbox) == [("task_progress", "t", 30)]
        assert hub.stats().events_dropped == 3
        assert hub.stats().events_published == 4

    on_loop(body)


def test_a_client_with_no_room_for_a_final_event_is_closed_with_1013_and_counted():
    async def body() -> None:
        hub = Hub()
        slow, fast = admit(hub, queue_size=1), admit(hub, queue_size=10)
        hub.publish("processing", task_completed("a", None))
        assert hub.publish("processing", task_completed("b", None)) == 1
        assert slow.outbox.closing == CloseRequest(1013, SLOW_CLIENT_REASON)
        assert [body["task_id"] for body in bodies(fast.outbox)] == ["a", "b"]
        assert hub.stats().slow_clients_disconnected == 1
        assert hub.publish("processing", task_completed("c", None)) == 1  # not counted twice
        assert hub.stats().slow_clients_disconnected == 1

    on_loop(body)


def test_messages_sent_are_counted_per_client_and_in_total():
    async def body() -> None:
        hub = Hub()
        client = admit(hub)
        hub.count_sent(client)
        hub.count_sent(client)
        assert (client.sent, hub.stats().messages_sent) == (2, 2)

    on_loop(body)


def test_a_worker_thread_publishes_through_the_loop():
    async def body() -> None:
        hub = Hub()
        client = admit(hub)
        worker = threading.Thread(
            target=hub.publish_threadsafe, args=("processing", task_completed("t", 1))
        )
        worker.start()
        await asyncio.to_thread(worker.join)
        item = await client.outbox.get(timeout=5)
        assert isinstance(item, Outgoing) and json.loads(item.text)["task_id"] == "t"

    on_loop(body)


def test_publishing_from_a_thread_before_any_client_connected_is_a_no_op():
    hub = Hub()
    hub.publish_threadsafe("processing", task_completed("t", 1))
    assert hub.stats().events_published == 0
    with pytest.raises(ValueError):
        hub.publish_threadsafe("processing", {"no": "type"})  # still raises in the caller


# The protocol


@pytest.mark.parametrize(
    "text", ["not json", "[1, 2]", '"ping"', '{"kind": "ping"}', '{"type": 1}', "[" * 100_000]
)
def test_messages_that_are_not_typed_json_objects_are_protocol_errors(text):
    with pytest.raises(ProtocolError):
        decode(text)


def test_a_search_reads_the_seeds_parameters():
    message = {"type": "search", "query": " cats ", "limit": 5, "objects": "cat, dog,,cat"}
    request = search_request({**message, "min_score": 0.2}, default_limit=10, max_limit=100)
    assert (request.query, request.limit, request.objects, request.min_score) == (
        "cats",
        5,
        ["cat", "dog"],
        0.2,
    )
    bare = search_request({"type": "search", "query": "x"}, default_limit=10, max_limit=100)
    assert (bare.limit, bare.objects, bare.min_score) == (10, None, None)
    listed = search_request(
        {"type": "search", "query": "x", "objects": ["cat"]}, default_limit=10, max_limit=100
    )
    assert listed.objects == ["cat"]


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"query": ""},
        {"query": 3},
        {"query": "x", "limit": 0},
        {"query": "x", "limit": 101},
        {"query": "x", "limit": True},
        {"query": "x", "limit": 2.5},
        {"query": "x", "objects": 3},
        {"query": "x", "min_score": "high"},
    ],
)
def test_invalid_search_parameters_are_protocol_errors(fields):
    with pytest.raises(ProtocolError):
        search_request({"type": "search", **fields}, default_limit=10, max_limit=100)


def test_message_size_counts_utf8_bytes():
    assert message_size("abc", None) == 3
    assert message_size("é", None) == 2
    assert message_size(None, b"\0" * 5) == 5


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        WsLimits(max_queue=0)
    with pytest.raises(ValueError):
        WsLimits(search_default_limit=200)
    assert WsLimits(heartbeat_s=None).heartbeat_s is None
