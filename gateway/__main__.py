"""`python -m gateway`: run the REST gateway with uvicorn (settings from FACET_* variables)."""

import os

# One BLAS thread unless the operator says otherwise, set before numpy loads: the gateway's
# matrix work (the vector store's exact search, image geometry) runs on worker threads beside
# Triton on the same cores, and OpenBLAS's extra threads keep spinning after each call,
# taking the cores Triton needs. Measured on 2 cores over 100,000 stored images: the library's
# search p50 52 → 37 ms (the query's embedding in Triton 32 → 14 ms, the store's scan 22 → 19
# ms); through HTTP (perf.context_search) 54–63 → 42–47 ms.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse

import uvicorn

from gateway.app import create_app
from gateway.recognition.camera import text_frame_limit
from gateway.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gateway",
        description="Facet's REST gateway. Every setting is a FACET_* environment variable "
        "(e.g. FACET_TRITON_GRPC_URL, FACET_PORT, FACET_DATA_DIR); see gateway/settings.py.",
    )
    parser.parse_args()
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        # X-Forwarded-For is read by gateway/proxies.py, from FACET_TRUSTED_PROXIES only.
        proxy_headers=False,
        # A WebSocket frame larger than the protocol's limit is refused before it is buffered
        # (uvicorn's default would take 16 MiB and only then let gateway.ws refuse it). The
        # largest is a camera frame sent as base64 text; the other endpoints check their own.
        ws_max_size=max(
            settings.ws_max_message_bytes, text_frame_limit(settings.camera_max_frame_bytes)
        )
        + 1024,
    )


main()
