"""The connection registry: clients, the channels they listen to, fan-out and the counters.

Everything but `publish_threadsafe` runs on the event loop's thread (the registry takes no
locks: on one thread each method is atomic, admission included).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.status import WS_1013_TRY_AGAIN_LATER

from gateway.ws.events import now_iso, prepare
from gateway.ws.outbox import Outbox, Outgoing, PutResult

log = logging.getLogger(__name__)

DEFAULT_CHANNELS = ("general", "processing", "search")
SLOW_CLIENT_REASON = "too slow: events could not be delivered, reconnect"


class UnknownChannel(ValueError):
    pass


@dataclass(eq=False)
class Client:
    id: str
    channel: str  # the endpoint's own channel
    outbox: Outbox
    subscriptions: set[str] = field(default_factory=set)
    connected_at: str = field(default_factory=now_iso)
    sent: int = 0

    @property
    def dropped(self) -> int:
        return self.outbox.dropped


@dataclass(frozen=True)
class HubStats:
    connections: int
    channels: dict[str, int]
    connections_accepted: int
    connections_rejected: int
    messages_sent: int
    events_published: int
    events_dropped: int
    slow_clients_disconnected: int


class Hub:
    def __init__(self, channels: Iterable[str] = DEFAULT_CHANNELS) -> None:
        self._channels: dict[str, set[Client]] = {name: set() for name in channels}
        if not self._channels:
            raise ValueError("a hub needs at least one channel")
        self._clients: dict[str, Client] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepted = 0
        self._rejected = 0
        self._sent = 0
        self._published = 0
        self._dropped = 0
        self._slow = 0

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self._channels)

    @property
    def clients(self) -> tuple[Client, ...]:
        return tuple(self._clients.values())

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop `publish_threadsafe` hands events to; `admit` binds the running one."""
        self._loop = loop

    def admit(self, channel: str, *, max_connections: int, queue_size: int) -> Client | None:
        """Register a client on `channel`, or None (counted as rejected) when the hub is full."""
        self._check(channel)
        self.bind_loop(asyncio.get_running_loop())
        if len(self._clients) >= max_connections:
            self._rejected += 1
            return None
        client = Client(id=uuid.uuid4().hex, channel=channel, outbox=Outbox(queue_size))
        self._clients[client.id] = client
        self._accepted += 1
        self.subscribe(client, channel)
        return client

    def remove(self, client: Client) -> None:
        self._clients.pop(client.id, None)
        for name in client.subscriptions:
            self._channels[name].discard(client)
        client.subscriptions.clear()

    def subscribe(self, client: Client, channel: str) -> None:
        self._check(channel)
        if client.id in self._clients:
            client.subscriptions.add(channel)
            self._channels[channel].add(client)

    def unsubscribe(self, client: Client, channel: str) -> None:
        self._check(channel)
        client.subscriptions.discard(channel)
        self._channels[channel].discard(client)

    def publish(self, channel: str, event: Mapping[str, Any]) -> int:
        """Queue `event` for every subscriber of `channel` (event-loop thread only); returns how
        many took it. Adds `timestamp`; raises ValueError/TypeError for a bad event or channel."""
        self._check(channel)
        return self._fan_out(channel, prepare(event))

    def publish_threadsafe(self, channel: str, event: Mapping[str, Any]) -> None:
        """`publish` from any thread (a job's worker): checked and serialised here, so a bad
        event raises in the caller, then delivered on the loop. Without a loop (no client ever
        connected) or after it closed there is nobody to tell, and the event is let go."""
        self._check(channel)
        item = prepare(event)
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._fan_out, channel, item)
        except RuntimeError:  # the loop closed since the check
            log.debug("event for %s not delivered: the event loop is closed", channel)

    def send(self, client: Client, event: Mapping[str, Any]) -> bool:
        """Queue `event` (a reply) for one client; False where it was not queued."""
        return self._deliver(client, prepare(event)).queued

    def count_sent(self, client: Client) -> None:
        client.sent += 1
        self._sent += 1

    def stats(self) -> HubStats:
        return HubStats(
            connections=len(self._clients),
            channels={name: len(members) for name, members in self._channels.items()},
            connections_accepted=self._accepted,
            connections_rejected=self._rejected,
            messages_sent=self._sent,
            events_published=self._published,
            events_dropped=self._dropped,
            slow_clients_disconnected=self._slow,
        )

    def _check(self, channel: str) -> None:
        if channel not in self._channels:
            known = ", ".join(self._channels)
            raise UnknownChannel(f"unknown channel {channel!r}; the channels are: {known}")

    def _fan_out(self, channel: str, item: Outgoing) -> int:
        self._published += 1
        # A copy: closing a slow client must not change the set being walked.
        return sum(self._deliver(client, item).queued for client in list(self._channels[channel]))

    def _deliver(self, client: Client, item: Outgoing) -> PutResult:
        before = client.outbox.dropped
        result = client.outbox.put(item)
        self._dropped += client.outbox.dropped - before
        if result is PutResult.OVERFLOW:
            self._slow += 1
            log.info("closing WebSocket client %s: no room for an undroppable event", client.id)
            client.outbox.close(WS_1013_TRY_AGAIN_LATER, SLOW_CLIENT_REASON)
        return result
