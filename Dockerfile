# The pipeline image. Every Vertex AI Pipelines step, the Vertex AI Training job and the Dataflow
# workers (--sdk_container_image) run it. `make image` builds it with Cloud Build and prints the
# digest that `make compile IMAGE=...@sha256:...` needs.
#
# Base: the official TFX image, whose TFX, TensorFlow and Beam versions requirements.lock pins,
# and whose ENTRYPOINT (the Beam SDK boot program) lets the image double as the Dataflow worker
# image. It is pinned by tag because no public source lists its digest. To pin the digest, run
#   gcloud artifacts docker images describe gcr.io/tfx-oss-public/tfx:1.16.0 \
#     --format='value(image_summary.digest)'
# and set TFX_IMAGE=gcr.io/tfx-oss-public/tfx@sha256:<digest> below (or pass --build-arg).
ARG TFX_IMAGE=gcr.io/tfx-oss-public/tfx:1.16.0
FROM ${TFX_IMAGE}

WORKDIR /pipeline

# Only what the base image lacks, at the versions of requirements.lock used as constraints (the
# lock's hashes are stripped: pip refuses unhashed requirements next to hashed constraints).
# The check fails the build if the TFX family differs from the lock.
COPY requirements.lock pipeline/vertex/lockfile.py /tmp/build/
RUN python /tmp/build/lockfile.py constraints /tmp/build/requirements.lock > /tmp/build/constraints.txt \
 && python -m pip install --no-cache-dir --constraint /tmp/build/constraints.txt pydantic pyyaml \
 && python /tmp/build/lockfile.py check /tmp/build/requirements.lock \
 && rm -rf /tmp/build

COPY pipeline/ pipeline/
COPY components/ components/
COPY models/ models/
COPY configs/ configs/
# The curated schema travels with the code it was reviewed with: SchemaGen reads it from here.
COPY schema/ schema/

# The Keras choice made everywhere model code runs (TFT and TFMA need Keras 2).
ENV PYTHONPATH=/pipeline \
    TF_USE_LEGACY_KERAS=1 \
    PYTHONUNBUFFERED=1

# No ENTRYPOINT or CMD: the base image's Beam boot entrypoint stays; Vertex AI sets each step's
# command (python -m tfx...) itself.
