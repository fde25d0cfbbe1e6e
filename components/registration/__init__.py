"""Model registration: every blessed model, after a serving smoke test, becomes a new version of one
Vertex AI Model Registry model (the TFX Vertex Pusher would create a new model per run and deploy it).

- `component.py`: the TFX component `ModelRegistration` (spec, class).
- `executor.py`: what it does (blessing check, smoke test, copy, upload, output properties).
- `settings.py`: where to upload (from the config), passed to the executor as JSON.
- `models_bucket.py`: the SavedModel's copy in the models bucket, where the version points.
- `upload.py`: the Vertex AI SDK calls, the serving container and the version's labels.

Import the component from `components.registration.component`; this package stays light so the
config can import `settings` without TFX.
"""
