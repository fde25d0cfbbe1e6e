# The pipeline image. Every Vertex AI Pipelines step, the Vertex AI Training job and the Dataflow
# workers (--sdk_container_image) run it. `make image` builds it with Cloud Build and prints the
# digest that `make compile IMAGE=...@sha256:...` needs. docs/vertex.md describes it.
#
# Base: Beam's SDK image for the locked Python (.python-version) and Beam (requirements.lock)
# versions. Its ENTRYPOINT, /opt/apache/beam/boot, is the boot program of that same Beam release,
# so the image doubles as the Dataflow worker image. It is pinned by tag because no public source
# lists its digest. To pin the digest, run
#   docker buildx imagetools inspect apache/beam_python3.10_sdk:2.59.0
# and set BEAM_IMAGE=apache/beam_python3.10_sdk@sha256:<digest> below (or pass --build-arg), with
# <digest> from the first `Digest:` line (the multi-platform index).
ARG BEAM_IMAGE=apache/beam_python3.10_sdk:2.59.0
FROM ${BEAM_IMAGE}

# requirements-runtime.lock: CPU. requirements-runtime-gpu.lock: the same plus the CUDA libraries
# TensorFlow needs for a GPU (docs/vertex.md, "The pipeline image").
ARG RUNTIME_LOCK=requirements-runtime.lock
# The Makefile's UV_VERSION: the installer that `make setup` uses too.
ARG UV_VERSION=0.13.9

WORKDIR /pipeline

# The image's Python packages are exactly the lock: `uv pip sync` installs the locked packages
# (hash-checked, bytecode compiled once here instead of in every process) and removes every other
# package of the base image; the check fails the build on any difference. uv runs from /tmp/uv and
# leaves with the build files.
COPY requirements-runtime.lock requirements-runtime-gpu.lock tools/lockfile.py /tmp/build/
RUN python -m pip install --no-cache-dir --disable-pip-version-check --target /tmp/uv uv==${UV_VERSION} \
 && /tmp/uv/bin/uv pip sync --system --no-cache --require-hashes --compile-bytecode /tmp/build/${RUNTIME_LOCK} \
 && /tmp/uv/bin/uv pip check --system \
 && rm -rf /tmp/uv \
 && python /tmp/build/lockfile.py check /tmp/build/${RUNTIME_LOCK} \
 && rm -rf /tmp/build

# GPU variant only: the dynamic loader must find the CUDA libraries of the nvidia-*-cu12 wheels.
# TensorFlow 2.16.2's RUNPATH names only some of their folders (not nvjitlink, which the cuSPARSE
# and cuSOLVER wheels depend on, nor curand), so all of them go into the loader's cache; ptxas goes
# on PATH for XLA.
RUN site=$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') \
 && if [ -d "$site/nvidia" ]; then \
      ls -d "$site"/nvidia/*/lib > /etc/ld.so.conf.d/tensorflow-cuda-wheels.conf && ldconfig \
      && ln -s "$site/nvidia/cuda_nvcc/bin/ptxas" /usr/local/bin/ptxas; \
    fi

COPY pipeline/ pipeline/
COPY components/ components/
COPY models/ models/
COPY configs/ configs/
# The curated schema travels with the code it was reviewed with: SchemaGen reads it from here.
COPY schema/ schema/

# The Keras choice made everywhere model code runs (TFT and TFMA need Keras 2). Beam's boot runs
# the SDK harness in this Python, where the lock is installed, instead of creating a virtualenv at
# every worker start (its default since Beam 2.44; the variable exists since 2.48).
ENV PYTHONPATH=/pipeline \
    TF_USE_LEGACY_KERAS=1 \
    PYTHONUNBUFFERED=1 \
    RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1

# No ENTRYPOINT or CMD: the base image's Beam boot entrypoint stays; Vertex AI sets each step's
# command (python -m tfx...) itself.
