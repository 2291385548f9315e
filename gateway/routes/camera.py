"""`ws://…/ws/camera`: the AI Multimedia Platform's live face recognition and object detection
(gateway/recognition/camera.py says how frames are taken and dropped).

With FACET_API_TOKEN set the connection needs it, as `Authorization: Bearer <token>` or, for
browsers (which cannot set headers on a WebSocket), `?token=<token>`; otherwise it is closed
with 1008. Over FACET_CAMERA_MAX_CONNECTIONS it is closed with 1013 (try again later)."""

from __future__ import annotations

import asyncio
import contextlib
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
from gateway.services import Services
from gateway.settings import Settings
from gateway.weights import synthetic_warning
from gateway.ws.session import SEND_FAILURES

router = APIRouter(tags=["face recognition (AI Multimedia Platform API)"])


def camera_limits(settings: Settings) -> CameraLimits:
    return CameraLimits(
        max_frame_bytes=settings.camera_max_frame_bytes,
        max_fps=settings.camera_max_fps,
        max_connections=settings.camera_max_connections,
    )


def authorization_of(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization")
    token = websocket.query_params.get("token")
    return header if header else (f"Bearer {token}" if token else None)


def analyser(services: Services) -> Any:
    service, settings = services.recognition, services.settings

    async def analyse(image: Any) -> dict[str, Any]:
        recognizer = service.recognizer()
        faces_found, objects = await asyncio.gather(
            service.detect_faces(image),
            service.detect_objects(image, settings.context_object_score),
        )
        await services.triton.require_ready(recognizer.model)
        known = await service.recognise_faces(image, faces_found, recognizer)
        used = [service.detector_model, recognizer.model, service.object_model]
        result: dict[str, Any] = {
            "faces": [recognised(item, service).model_dump() for item in known],
            "objects": [
                {
                    "label": d.label,
                    "confidence": round(d.confidence, 4),
                    "bbox": [round(v) for v in d.box],
                }
                for d in objects
            ],
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
    if not token_accepted(settings, authorization_of(websocket)):
        await refuse(websocket, WS_1008_POLICY_VIOLATION, "unauthorized: a bearer token is needed")
        return
    gate: CameraGate = services.camera_gate
    if not gate.admit():
        await refuse(websocket, WS_1013_TRY_AGAIN_LATER, "try again later: too many cameras")
        return
    try:
        with contextlib.suppress(*SEND_FAILURES):
            await websocket.accept()
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
