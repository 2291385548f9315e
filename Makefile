# Facet: the two set-up commands are `make serve` and `make test`; everything they need is below.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
REPO   ?= model_repository
WEIGHTS ?= auto
MODELS ?= realesrgan_x4plus realesr_general_x4v3

.PHONY: install models serve triton test lint typecheck unit integration clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

models: install
	$(PY) -m export $(MODELS) --weights $(WEIGHTS) --repository $(REPO)

# Triton alone on 127.0.0.1 (gRPC 8001, metrics 8002, HTTP 8003); Ctrl-C stops it.
triton: models
	$(PY) -m serving serve --repository $(REPO)

serve: triton

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest tests/unit -q

integration: install
	$(PY) -m pytest tests/integration -q

test: lint typecheck
	$(PY) -m pytest tests -q

clean:
	rm -rf $(VENV) run build
