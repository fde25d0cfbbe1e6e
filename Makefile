# Run `make help` for the list of targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
PY      := $(VENV)/bin/python
UV      := $(VENV)/bin/uv
UV_VERSION := 0.13.9
LOCK    := requirements.lock
CONFIG  ?= configs/local.yaml
DATA    ?=
OUT     ?=

# The Keras choice for every process that runs model code (TFT and TFMA need Keras 2).
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

# Python 3.10: the interpreter pyenv selects through .python-version, else python3.10 on PATH.
PYTHON310 := $(shell \
	for candidate in "$$(pyenv which python 2>/dev/null)" "$$(command -v python3.10)"; do \
	  if [ -n "$$candidate" ] && "$$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then \
	    echo "$$candidate"; break; fi; done)

RUN_ARGS := --config $(CONFIG) $(if $(DATA),--data $(DATA)) $(if $(OUT),--output-dir $(OUT))

.PHONY: help setup lock run-local test lint bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.synced: $(LOCK)
	@test -n "$(PYTHON310)" || { echo "error: Python 3.10 not found; install it (e.g. 'pyenv install 3.10') or put python3.10 on PATH" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip sync --quiet --python $(PY) --require-hashes $(LOCK)
	$(UV) pip check --python $(PY)
	@touch $@

setup: $(VENV)/.synced ## Create .venv with exactly the locked packages (Python 3.10)

lock: ## Re-resolve requirements.in into requirements.lock (then review the diff)
	@test -x $(UV) || { echo "error: run 'make setup' first" >&2; exit 1; }
	$(UV) pip compile requirements.in --python-version 3.10 --python-platform x86_64-manylinux_2_28 \
	  --generate-hashes --no-header --exclude-newer 2025-01-01 --index-url https://pypi.org/simple -o $(LOCK)

run-local: setup ## Run the pipeline on this machine (CONFIG=, DATA=csv_dir, OUT=output_dir)
	$(PY) -m pipeline run-local $(RUN_ARGS)

test: setup ## Run the tests, the end-to-end pipeline run included
	$(PY) -m pytest

lint: setup ## Check style with ruff
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: setup ## Measure a cold local run: wall time per component, peak memory, metrics (JSON)
	$(PY) -m pipeline.bench $(if $(DATA),--data $(DATA))

clean: ## Remove local outputs (.local/) and build files
	rm -rf .local build bench-results
