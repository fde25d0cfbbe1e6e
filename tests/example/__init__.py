"""The taxi example's own tests: a fork rewrites these for its model (README "Make it yours", step 8).

Everything here checks the example itself: the values of its configs/ (pipeline name, thresholds,
sample data, Vertex AI environments, smoke instances), what its schema sets, the taxi model on
made-up trips, and the golden Vertex AI specs compiled from its configs (golden/, refreshed by
`make golden`; test_golden.py holds for any configs and stays). Every test here carries the
`example` marker: `pytest -m "not example"` runs the rest. Every other test derives its
expectations from configs/, models/ and schema/, so it holds for a fork as it is.
"""
