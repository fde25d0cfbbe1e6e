"""models/ checked on the configured data, so that these tests hold in a fork as they are (README
"Make it yours"): the fixtures of tests/components/conftest.py (rows of the data `data.path` names,
converted as CsvExampleGen converts them, and the real Transform analysed on them). The taxi
example's own model tests: tests/example/test_model.py."""

from tests.components.conftest import configured_data, transformed  # noqa: F401 (fixtures)
