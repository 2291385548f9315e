"""`python -m gateway`: run the REST gateway with uvicorn (settings from FACET_* variables)."""

import argparse

import uvicorn

from gateway.app import create_app
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
        # A WebSocket frame larger than the protocol's limit is refused before it is buffered
        # (uvicorn's default would take 16 MiB and only then let gateway.ws refuse it).
        ws_max_size=settings.ws_max_message_bytes + 1024,
    )


main()
