"""`ws://…/ws/camera`: the AI Multimedia Platform's live face recognition and object detection
(gateway/recognition/camera.py says how frames are taken and dropped).

With FACET_API_TOKEN set the connection needs it: as `Authorization: Bearer <token>`, or, for
browsers (which cannot set headers on a WebSocket), as the first message, `{"type": "auth",
"token": "<token>"}`, answered `{"type": "authenticated"}`. Never in the URL: access logs keep
query strings. Otherwise it is closed with 1008. Over FACET_CAMERA_MAX_CONNECTIONS it is
closed with 1013 (try again later)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.status import WS_1008_POLICY_VIOLATION, WS_1013_TRY_AGAIN_LATER

from gateway.auth import token_accepted
from gateway.imageio import decode_upload
from gateway.recognition.camera import (
    CameraGate,
    CameraLimits,
    CameraSession,
    TooManyBadMessages,
)
from gateway.routes.recognition_faces import recognised
from gateway.routes.recognition_images import object_detection
from gateway.services import Services
from gateway.settings import Settings
from gateway.weights import synthetic_warning
from gateway.ws.session import SEND_FAILURES

router = APIRouter(tags=["face recognition (AI Multimedia Platform API)"])
AUTH_TIMEOUT_S = 10.0
UNAUTHORIZED = "unauthorized: send 'Authorization: Bearer <token>' or a first auth message"


def camera_limits(settings: Settings) -> CameraLimits:
    return CameraLimits(
        max_frame_bytes=settings.camera_max_frame_bytes,
        max_fps=settings.camera_max_fps,
    )


async def token_in_first_message(websocket: WebSocket, settings: Settings) -> bool:
    """For a connection without an Authorization header (accepted): True when no token is
    configured, else whether its first message carries the right one."""
    if not settings.api_token.get_secret_value():
        return True
    try:
        first = await asyncio.wait_for(websocket.receive_text(), AUTH_TIMEOUT_S)
        body = json.loads(first)
    except (TimeoutError, ValueError, KeyError, *SEND_FAILURES):
        return False
    token = body.get("token") if isinstance(body, dict) and body.get("type") == "auth" else None
    if not isinstance(token, str) or not token_accepted(settings, f"Bearer {token}"):
        return False
    await websocket.send_json({"type": "authenticated"})
    return True


def analyser(services: Services) -> Any:
    service, settings = services.recognition, services.settings

    async def analyse(image: Any) -> dict[str, Any]:
        recognizer = await service.current_recognizer()
        faces_found, objects = await asyncio.gather(
            service.detect_faces(image),
            service.detect_objects(image, settings.context_object_score),
        )
        await services.triton.require_ready(recognizer.model)
        known = await service.recognise_faces(image, faces_found, recognizer)
        used = [service.detector_model, recognizer.model, service.object_model]
        result: dict[str, Any] = {
            "faces": [recognised(item).model_dump() for item in known],
            "objects": [object_detection(d).model_dump() for d in objects],
            "model": recognizer.space,
        }
        if warning := synthetic_warning(service.synthetic_models(used)):
            result["warning"] = warning
        return result

    return analyse


async def refuse(websocket: WebSocket, code: int, reason: str) -> None:
    # Accepted first: a close before the handshake reaches browsers as 1006, without a reason.
    with contextlib.suppress(*SEND_FAILURES):
        await websocket.accept()
        await websocket.close(code, reason)


@router.websocket("/ws/camera")
async def camera(websocket: WebSocket) -> None:
    """Stream frames; each processed one is answered with faces, names and objects."""
    services: Services = websocket.app.state.services
    settings = services.settings
    header = websocket.headers.get("authorization")
    if header and not token_accepted(settings, header):
        await refuse(websocket, WS_1008_POLICY_VIOLATION, UNAUTHORIZED)
        return
    gate: CameraGate = services.camera_gate
    if not gate.admit():
        await refuse(websocket, WS_1013_TRY_AGAIN_LATER, "try again later: too many cameras")
        return
    try:
        with contextlib.suppress(*SEND_FAILURES):
            await websocket.accept()
            if not header and not await token_in_first_message(websocket, settings):
                await websocket.close(WS_1008_POLICY_VIOLATION, UNAUTHORIZED)
                return
            session = CameraSession(
                websocket.receive,
                websocket.send_json,
                lambda data: decode_upload(data, settings).rgb,
                analyser(services),
                camera_limits(settings),
            )
            try:
                await session.run()
            except TooManyBadMessages:
                await websocket.close(WS_1008_POLICY_VIOLATION, "too many invalid messages")
    finally:
        gate.release()
