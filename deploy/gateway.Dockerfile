# The REST gateway alone: FastAPI in front of a Triton reached over gRPC (FACET_TRITON_GRPC_URL).
# No torch, onnx or exporter package: requirements/gateway.txt is the gateway's whole pinned set
# (gateway/, triton_core/ and the clients import nothing else at run time).
#   docker build -f deploy/gateway.Dockerfile -t facet/gateway:0.1.0 .
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# --no-deps: the file pins every package the gateway needs, transitive ones included, so nothing
# unpinned can come in; `pip check` then fails the build if the file ever misses one.
COPY requirements/gateway.txt /tmp/requirements-gateway.txt
RUN pip install --no-deps -r /tmp/requirements-gateway.txt \
    && pip check \
    && rm /tmp/requirements-gateway.txt

# The code is root's and read-only for the service; only its state folders are writable.
WORKDIR /app
COPY triton_core/ triton_core/
COPY gateway/ gateway/

# uid 10001 (numeric, so Kubernetes' runAsNonRoot can check it). Named volumes mounted on these
# folders start with their ownership: data (SQLite stores, per gateway), media (the /api/v1
# media root) and /shared (uploads and results that every gateway sees).
RUN groupadd --system --gid 10001 facet \
    && useradd --system --uid 10001 --gid facet --home-dir /var/lib/facet --shell /usr/sbin/nologin facet \
    && mkdir -p /var/lib/facet/data /var/lib/facet/media /shared \
    && chown -R facet:facet /var/lib/facet /shared

ENV PYTHONPATH=/app \
    FACET_HOST=0.0.0.0 \
    FACET_PORT=8000 \
    FACET_DATA_DIR=/var/lib/facet/data \
    FACET_MEDIA_ROOTS='["/var/lib/facet/media"]'

USER 10001:10001
WORKDIR /var/lib/facet
EXPOSE 8000

# /health answers 503 while Triton or the upscaler is not ready (the container is then unhealthy,
# which is what a load balancer needs to know). slim has no curl: the standard library asks, and
# an error status raises, so python exits 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('FACET_PORT', '8000'), timeout=4)"]

CMD ["python", "-m", "gateway"]
