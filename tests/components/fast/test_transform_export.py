"""The exported SavedModel applies the same Transform graph with TFT's loader as with TFT's Keras layer
(the Transform graph of models/preprocessing.py and the model of models/ on rows of the configured data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from components.fast import autograph, transform_export
from components.smoke_test import raw_instances
from models import serving
from models.model import Hyperparameters, build_model
from tests.components.conftest import ConfiguredData, Transformed, without_label_columns


@pytest.fixture(scope="module")
def exports(transformed: Transformed, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One trained model exported twice: through TFT's loader (fast) and TFT's Keras layer (stock)."""
    output = transformed.output
    autograph.skip_tf_keras()
    model = build_model(output, Hyperparameters(hidden_units=(8,)))
    model.fit(transformed.dataset().repeat(), steps_per_epoch=5, verbose=0)
    folders = {}
    for name, loader in (("fast", True), ("stock", False)):
        folders[name] = tmp_path_factory.mktemp(f"export-{name}")
        with transform_export.loader_export(loader):
            serving.export(model, output, str(folders[name]))
    return folders


def user_object_identifiers(export_dir: Path) -> set[str]:
    saved = saved_model_pb2.SavedModel.FromString((export_dir / "saved_model.pb").read_bytes())
    nodes = saved.meta_graphs[0].object_graph_def.nodes
    return {node.user_object.identifier for node in nodes if node.HasField("user_object")}


def test_load_gives_tfts_layer_unless_the_fast_path_is_on(transformed: Transformed) -> None:
    output = transformed.output
    assert transform_export.load(output).state is output.transform_features_layer()
    with transform_export.loader_export(True):
        fast = transform_export.load(output)
    assert type(fast.apply.__self__).__name__ == "SavedModelLoader"
    assert transform_export.load(output).state is output.transform_features_layer()  # restored after the block


def test_transformed_features_equal_tfts_layer(transformed: Transformed, configured_data: ConfiguredData) -> None:
    output = transformed.output
    serialized = tf.constant(configured_data.examples[:20])
    raw = tf.io.parse_example(serialized, output.raw_feature_spec())
    with transform_export.loader_export(True):
        fast = transform_export.load(output).apply(raw)
    stock = output.transform_features_layer()(raw)
    assert fast.keys() == stock.keys()
    for key, values in stock.items():
        np.testing.assert_array_equal(fast[key].numpy(), values.numpy(), err_msg=key)


def test_every_signature_answers_the_same_from_both_exports(
    exports: dict[str, Path], configured_data: ConfiguredData
) -> None:
    fast, stock = (tf.saved_model.load(str(exports[name])) for name in ("fast", "stock"))
    assert (
        set(fast.signatures)
        == set(stock.signatures)
        == {
            serving.DEFAULT_SIGNATURE,
            serving.EXAMPLES_SIGNATURE,
            serving.TRANSFORM_SIGNATURE,
        }
    )
    sample = configured_data.examples[:16]
    unlabelled = tf.constant([without_label_columns(row) for row in sample])
    labelled = tf.constant(sample)
    instance_specs = stock.signatures[serving.DEFAULT_SIGNATURE].structured_input_signature[1]
    rows = raw_instances(sample, instance_specs)  # a missing value as 0 or ''
    instances = {key: tf.constant([row[key] for row in rows], spec.dtype) for key, spec in instance_specs.items()}
    calls = {
        serving.EXAMPLES_SIGNATURE: {"examples": unlabelled},
        serving.TRANSFORM_SIGNATURE: {"examples": labelled},
        serving.DEFAULT_SIGNATURE: instances,
    }
    for signature, arguments in calls.items():
        expected = stock.signatures[signature](**arguments)
        actual = fast.signatures[signature](**arguments)
        assert actual.keys() == expected.keys(), signature
        for key, values in expected.items():
            np.testing.assert_array_equal(actual[key].numpy(), values.numpy(), err_msg=f"{signature}: {key}")


def test_the_fast_export_holds_no_keras_object(exports: dict[str, Path]) -> None:
    assert not [identifier for identifier in user_object_identifiers(exports["fast"]) if "keras" in identifier]
    # The stock export holds TFT's Keras layer: what the fast path saves the time of.
    assert [identifier for identifier in user_object_identifiers(exports["stock"]) if "keras" in identifier]
