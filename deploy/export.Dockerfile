# The exporters: PyTorch (CPU build) → ONNX, checked against their references, installed into a
# Triton model repository on a volume (deploy/export-entrypoint.sh; docker-compose.yml's `export`).
#   docker build -f deploy/export.Dockerfile -t facet/export:0.1.0 .
#   docker run --rm -v facet-models:/models facet/export:0.1.0
# TensorRT plans are built afterwards on a GPU, inside the NGC Triton image (`trt-plans`).

# Node.js 20 runs the TF.js reference check and `npm pack` of the NanoDet weights (export/npm.py);
# Debian 12's own nodejs is 18, so the binary and npm come from the official Node image.
FROM node:20.19.5-bookworm-slim AS node

FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
    && node --version && npm --version

# requirements/export.txt pins torch==2.13.0, the CPU build (the exporters trace on the CPU; the
# default wheel would add gigabytes of CUDA libraries). Installed first from PyTorch's CPU index,
# it satisfies that pin, so the rest installs as `make install` does: export.txt, then the two
# packages that must go in with --no-deps (requirements/export-no-deps.txt says why).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY requirements/export.txt requirements/export-no-deps.txt /tmp/requirements/
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0+cpu \
    && pip install -r /tmp/requirements/export.txt \
    && pip install --no-deps -r /tmp/requirements/export-no-deps.txt \
    && rm -r /tmp/requirements

# What `python -m export` imports or copies: export/, triton_core/, serving/bls/ (the BLS models'
# shared modules) and the committed model_repository/ tree (configs, ensembles, BLS sources;
# .dockerignore keeps generated model files out).
WORKDIR /app
COPY triton_core/ triton_core/
COPY serving/__init__.py serving/__init__.py
COPY serving/bls/ serving/bls/
COPY export/ export/
COPY model_repository/ model_repository/
COPY deploy/export-entrypoint.sh /usr/local/bin/facet-export

RUN groupadd --system --gid 10001 facet \
    && useradd --system --uid 10001 --gid facet --create-home --home-dir /home/facet --shell /usr/sbin/nologin facet \
    && mkdir -p /models /weights \
    && chown facet:facet /models /weights

ENV PYTHONPATH=/app \
    FACET_REPOSITORY=/models \
    FACET_WEIGHTS=auto \
    FACET_WEIGHTS_DIR=/weights

USER 10001:10001
# Official checkpoints are looked for in /weights (--weights auto uses them when present); the npm
# cache of registry-package weights lands there too, so keep it on a volume between runs.
VOLUME ["/models", "/weights"]
ENTRYPOINT ["/usr/local/bin/facet-export"]
CMD ["all"]
