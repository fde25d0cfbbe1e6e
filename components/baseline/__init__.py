"""The Evaluator's baseline: this pipeline's newest model that got through registration.

The rule, the same locally and on Vertex AI: the baseline is the newest model of this pipeline that
the Evaluator blessed and that then passed the serving smoke test and was registered, never the
candidate itself and never another pipeline's model. Locally that is what the Pusher pushed (it
runs only after ModelRegistration passed), read from this pipeline's ML Metadata; on Vertex AI it
is the newest version of the `registry` model that a run of this pipeline uploaded. On the first
run there is none, and the Evaluator judges the candidate on `evaluation.min_auc` alone.

- `sources.py`: where the step looks (from the config), handed to the executor as JSON.
- `local_metadata.py` / `model_registry.py`: the two look-ups.
- `component.py` / `executor.py`: the TFX step `BaselineModel`.
- `evaluator.py`: TFX's Evaluator, leaving out the "no baseline" marker a Vertex AI step records.
"""
