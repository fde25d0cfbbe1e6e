"""The taxi example's own tests: a fork rewrites these for its model (README "Make it yours").

Everything here checks the example itself: the values of its configs/ (pipeline name, thresholds,
sample data, Vertex AI environments, smoke instances), what its schema sets, and the golden Vertex AI
specs compiled from them (golden/, refreshed by `make golden`). Every test here carries the
`example` marker: `pytest -m "not example"` runs the rest. The tests under tests/pipeline/,
tests/components/ and tests/runners/ derive their expectations from configs/, models/ and schema/,
so they hold for a fork as they are.
"""
