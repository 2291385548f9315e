"""The Image Context Extractor API's WebSocket layer: `WS /ws` ("general"), `WS /ws/processing`
("processing"), `WS /ws/search` ("search", live search) and `GET /ws/stats`.

Wiring: one `Hub` for the app, `app.include_router(ws_router(hub, search, WsLimits(...)))`;
jobs call `hub.publish(channel, event)` on the event loop, or `hub.publish_threadsafe(...)`
from a worker thread.

Every message is one JSON object in a text message, with a `type`; the server adds
`timestamp` (ISO-8601, UTC: "2025-07-07T10:36:13.577413+00:00") to each one it sends.

Client → server, on every endpoint:
    {"type": "ping"}                                   → {"type": "pong"}
    {"type": "subscribe", "channel": "processing"}     → {"type": "subscribed", "channel": ...}
    {"type": "unsubscribe", "channel": "processing"}   → {"type": "unsubscribed", "channel": ...}
and on /ws/search only:
    {"type": "search", "query": "cats", "limit": 5, "objects": "cat,dog", "min_score": 0.2}
        → {"type": "search_results", "query": "cats", "results": [...], "count": N,
           "search_time": seconds}
    `limit` defaults to WsLimits.search_default_limit; `objects` is "cat,dog" or a list;
    `min_score` may be null. A newer search cancels the one still running (search as you
    type): only the newest query is answered. A search failing with a FacetError answers
    {"type": "error", "message": exc.detail}.
Anything else (bad JSON, not an object, no `type`, an unknown type or channel, binary
messages) → {"type": "error", "message": why}; the connection stays open until
WsLimits.max_bad_messages such messages in a row (then close 1008).

Server → client:
    {"type": "connection_established", "client_id": str, "channel": str,
     "subscriptions": [str], "available_channels": [str], "max_message_bytes": int}
    {"type": "heartbeat"}                   after WsLimits.heartbeat_s with nothing sent
and the events the gateway publishes (builders in `gateway.ws.events`):
    {"type": "task_progress", "task_id": str, "status": str, "progress": 0–100, "message": str}
    {"type": "task_completed", "task_id": str, "result": any JSON}
    {"type": "task_failed", "task_id": str, "error": str}
    {"type": "image_processed", "image_id": str, ...the image's fields}
A published event may carry any other fields; `"final": true` makes it never droppable.

Slow clients: each has a bounded queue (WsLimits.max_queue). When it is full, task_progress
events are dropped, keeping the newest per task; final events (task_completed, task_failed,
"final": true) and replies are never dropped: a client whose queue holds no droppable event
to make room is closed with 1013. Drops are counted per client and in /ws/stats.

Close codes: 1009 a message over WsLimits.max_message_bytes; 1013 the connection limit
(accepted, then closed at once, so browsers see the code and reason) or a client too slow;
1008 too many invalid messages; 1000 the idle timeout (off by default).
"""

from gateway.ws.hub import DEFAULT_CHANNELS, Client, Hub, HubStats, UnknownChannel
from gateway.ws.limits import WsLimits
from gateway.ws.routes import ws_router
from gateway.ws.session import SearchFn

__all__ = [
    "DEFAULT_CHANNELS",
    "Client",
    "Hub",
    "HubStats",
    "SearchFn",
    "UnknownChannel",
    "WsLimits",
    "ws_router",
]
