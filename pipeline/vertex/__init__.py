"""Running the pipeline on Vertex AI Pipelines: compile, image references, Dataflow and training
settings, submit, watch and schedule.

Modules that talk to Vertex AI import `google.cloud.aiplatform` lazily, and nothing here imports
TFX except compile.py and training.py, so `python -m pipeline submit` starts quickly.
"""
