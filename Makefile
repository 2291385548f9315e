# Facet: the two set-up commands are `make serve` and `make test`; everything they need is below.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
REPO   ?= model_repository
WEIGHTS ?= auto
MODELS ?= all

.PHONY: install models serve triton up down test lint typecheck unit integration clean deploy-check
RUN    := run
GATEWAY_URL := http://127.0.0.1:8000

install: $(STAMP)

# requirements.txt pulls in requirements/dev.txt and through it every pinned set. The two
# packages in requirements/export-no-deps.txt declare opencv-python, a second wheel providing
# `cv2` that would fight opencv-python-headless over the same files; they go in with --no-deps
# (what they really need is pinned in requirements/export.txt). The project itself goes in with
# --no-deps too: the lock files pin everything.
$(STAMP): requirements.txt $(wildcard requirements/*.txt) pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements/export-no-deps.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

models: install
	$(PY) -m export $(MODELS) --weights $(WEIGHTS) --repository $(REPO)

# Triton alone on 127.0.0.1 (gRPC 8001, metrics 8002, HTTP 8003); Ctrl-C stops it.
triton: models
	$(PY) -m serving serve --repository $(REPO)

# Triton and the REST gateway (127.0.0.1:8000) in the foreground; Ctrl-C stops both.
serve: models
	$(PY) -m serving stack --repository $(REPO)

# The same in the background: returns once both are ready; logs and pid in run/.
up: models
	mkdir -p $(RUN)
	@if [ -f $(RUN)/stack.pid ] && kill -0 $$(cat $(RUN)/stack.pid) 2>/dev/null; then \
		echo "already running (pid $$(cat $(RUN)/stack.pid))"; exit 0; fi
	nohup $(PY) -m serving stack --repository $(REPO) > $(RUN)/stack.log 2>&1 & echo $$! > $(RUN)/stack.pid
	$(PY) -m serving.wait $(GATEWAY_URL)/openapi.json --pid-file $(RUN)/stack.pid --log $(RUN)/stack.log

down:
	@if [ -f $(RUN)/stack.pid ]; then \
		pid=$$(cat $(RUN)/stack.pid); kill $$pid 2>/dev/null || true; \
		while kill -0 $$pid 2>/dev/null; do sleep 0.5; done; rm -f $(RUN)/stack.pid; echo "stopped"; \
	else echo "not running"; fi

# Python models inside the repository are source too; ruff skips the folder unless named.
PY_MODELS := $(wildcard model_repository/*/1/*.py)

lint: install
	$(VENV)/bin/ruff check . $(PY_MODELS)
	$(VENV)/bin/ruff format --check . $(PY_MODELS)

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest tests/unit -q

integration: install
	$(PY) -m pytest tests/integration -q

test: lint typecheck deploy-check
	$(PY) -m pytest tests -q

# docker-compose.yml, the Dockerfiles, the Helm chart and the KServe example, validated without
# Docker or a cluster by pinned tools in their own venv (build/deploy-tools): scripts/check_deploy.sh.
deploy-check:
	bash scripts/check_deploy.sh

clean:
	rm -rf $(VENV) run build

# Benchmarks. `perf`: NVIDIA perf_analyzer sweep of every served model against the running stack
# (starts it like `make up` when needed); CSVs land in perf/reports/raw/. `perf-quick`: the ratio
# benchmark (ORT, Triton, gateway, PyTorch) on tiny synthetic models, under a minute.
.PHONY: perf perf-quick
perf: up
	$(PY) -m perf.install_perf_analyzer
	$(PY) -m perf.run_perf_analyzer --url 127.0.0.1:8001 --repository $(REPO)

perf-quick: install
	$(PY) -m perf.benchmark --quick

# PostgreSQL 15 + pgvector for FACET_VECTOR_STORE=postgres (gateway/vectors/pgvector.py): installs
# them when missing (Debian packages; apt-get needs root), starts a throwaway cluster in run/pg on
# a free loopback port and prints the URL to put in FACET_POSTGRES_URL. `make pg-stop` stops it.
.PHONY: pg pg-stop
pg:
	@bash scripts/pg.sh start $(RUN)/pg

pg-stop:
	@bash scripts/pg.sh stop $(RUN)/pg

# Redis for FACET_REDIS_URL (the shared job queue and rate-limit counters): installs Debian's
# redis-server when missing, starts one in run/redis on a free loopback port with a random
# password and prints its URL. `make redis-stop` stops it.
.PHONY: redis redis-stop scaleout-test
redis:
	@bash scripts/redis.sh start $(RUN)/redis

redis-stop:
	@bash scripts/redis.sh stop $(RUN)/redis

# Two Tritons and two gateways on one PostgreSQL and one Redis (all started by the test from
# the project's scripts), one gateway and one Triton killed mid-load; `make test` runs it too.
scaleout-test: install
	$(PY) -m pytest tests/scaleout -q
