"""TF Serving's REST predict semantics (tools/standins/tf_serving_rest.py), without a model or HTTP.

Expected messages are TF Serving 2.15's (json_tensor.cc, http_rest_api_handler.cc,
predict_util.cc), assembled as its source assembles them.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from tools.standins import tf_serving_rest as rest
from tools.standins.tf_serving_rest import ServingError, Signature

RAW_FEATURES = Signature(inputs={"fare": "DT_FLOAT", "company": "DT_STRING", "trip_seconds": "DT_INT64"})
EXAMPLES = Signature(inputs={"examples": "DT_STRING"})
SIGNATURES = {"serving_default": RAW_FEATURES, "serving_examples": EXAMPLES}


def parse(document: object, signatures: dict[str, Signature] | None = None) -> rest.PredictRequest:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return rest.parse_predict_request(body, signatures or SIGNATURES)


def refusal(document: object, signatures: dict[str, Signature] | None = None) -> ServingError:
    with pytest.raises(ServingError) as refused:
        parse(document, signatures)
    return refused.value


def element_error(index: int, key: str, status: str) -> str:
    return f"Failed to process element: {index} key: {key} of 'instances' list. Error: {status}"


# -- row format ----------------------------------------------------------------------------------


def test_instances_of_named_inputs_are_batched_per_input() -> None:
    request = parse(
        {
            "instances": [
                {"fare": 12.5, "company": "Flash Cab", "trip_seconds": 360},
                {"fare": 3, "company": "", "trip_seconds": 0},
            ]
        }
    )

    inputs = request.numpy_inputs()
    assert (request.signature_name, request.columnar) == ("", False)
    assert inputs["fare"].dtype == np.float32 and inputs["fare"].tolist() == [12.5, 3.0]
    assert inputs["company"].tolist() == [b"Flash Cab", b""]
    assert inputs["trip_seconds"].dtype == np.int64 and inputs["trip_seconds"].shape == (2,)


def test_a_single_input_takes_bare_values_nested_lists_and_b64_objects() -> None:
    single = {"serving_default": Signature(inputs={"x": "DT_INT32"})}

    assert parse({"instances": [1, 2, 3]}, single).numpy_inputs()["x"].shape == (3,)
    assert parse({"instances": [[[1, 2]], [[3, 4]]]}, single).numpy_inputs()["x"].tolist() == [[[1, 2]], [[3, 4]]]
    assert parse({"instances": [{"x": 1}, {"x": 2}]}, single).numpy_inputs()["x"].tolist() == [1, 2]
    examples = parse(
        {"signature_name": "serving_examples", "instances": [{"b64": base64.b64encode(b"\x00\xff").decode()}, "text"]}
    )
    assert examples.signature_name == "serving_examples"
    assert examples.numpy_inputs()["examples"].tolist() == [b"\x00\xff", b"text"]
    assert parse({"signature_name": "serving_examples", "instances": [{"b64": "YQ"}]}).inputs["examples"].values == [
        b"a"
    ]  # padding is optional, as for absl::Base64Unescape


def test_json_objects_a_single_input_signature_does_not_name_are_refused() -> None:
    error = refusal({"signature_name": "serving_examples", "instances": [{"fare": 6.05, "company": "Cash"}]})

    assert (error.code, error.http_status) == ("INVALID_ARGUMENT", 400)
    assert error.message == element_error(0, "fare", "INVALID_ARGUMENT: JSON object: does not have named input: fare")


def test_instances_must_name_exactly_the_signatures_inputs() -> None:
    missing = refusal({"instances": [{"fare": 1.0, "company": "a"}]})
    plain = refusal({"instances": [1.0, 2.0]})

    assert missing.message == (
        "Failed to process element: 0 of 'instances' list. JSON object: "
        '{\n    "fare": 1.0,\n    "company": "a"\n} keys must be equal to: company,fare,trip_seconds'
    )
    assert plain.message == (
        "instances is a plain list, but expecting list of objects as multiple input tensors required "
        "as per tensorinfo_map"
    )


def test_objects_and_values_cannot_be_mixed() -> None:
    single = {"serving_default": Signature(inputs={"x": "DT_FLOAT"})}

    assert refusal({"instances": [{"x": 1.0}, [1.0]]}, single).message == (
        "Expecting object but got list at item 1 of input list"
    )
    assert refusal({"instances": [1.0, {"x": 1.0}]}, single).message == (
        "Expecting value/list but got object at item 1 of input list"
    )


@pytest.mark.parametrize(
    ("dtype", "value", "problem"),
    [
        ("DT_FLOAT", "x", 'JSON Value: "x" Type: String is not of expected type: float'),
        ("DT_FLOAT", True, "JSON Value: true Type: True is not of expected type: float"),
        ("DT_DOUBLE", None, "JSON Value: null Type: Null is not of expected type: double"),
        ("DT_INT64", 1.5, "JSON Value: 1.5 Type: Number is not of expected type: int64"),
        ("DT_INT64", 2**63, "JSON Value: 9223372036854775808 Type: Number is not of expected type: int64"),
        ("DT_INT32", 2**31, "JSON Value: 2147483648 Type: Number is not of expected type: int32"),
        ("DT_UINT32", -1, "JSON Value: -1 Type: Number is not of expected type: uint32"),
        ("DT_BOOL", 1, "JSON Value: 1 Type: Number is not of expected type: bool"),
        ("DT_STRING", 41.906025969, "JSON Value: 41.9060249 Type: Number is not of expected type: string"),
        ("DT_STRING", 360, "JSON Value: 360 Type: Number is not of expected type: string"),
        (
            "DT_FLOAT",
            {"b64": "AA=="},
            'JSON Value: {\n    "b64": "AA=="\n} Type: Object is not of expected type: float',
        ),
        ("DT_STRING", {"b64": "!!"}, "Unable to base64 decode"),
    ],
)
def test_values_must_have_the_inputs_type(dtype: str, value: object, problem: str) -> None:
    signatures = {"serving_default": Signature(inputs={"x": dtype, "y": "DT_FLOAT"})}

    error = refusal({"instances": [{"x": value, "y": 1.0}]}, signatures)

    assert error.message == element_error(0, "x", f"INVALID_ARGUMENT: {problem}")


def test_values_convert_as_tensorflow_protos_do() -> None:
    signatures = {
        "serving_default": Signature(
            inputs={"f": "DT_FLOAT", "d": "DT_DOUBLE", "b": "DT_UINT8", "u": "DT_UINT64", "t": "DT_BOOL"}
        )
    }

    request = parse(
        b'{"instances": [{"f": NaN, "d": 0.1, "b": 300, "u": 18446744073709551615, "t": true}]}', signatures
    )

    inputs = request.numpy_inputs()
    assert np.isnan(inputs["f"][0]) and inputs["d"].tolist() == [0.1]
    assert inputs["b"].tolist() == [44]  # int_val cast to uint8 wraps
    assert inputs["u"].dtype == np.uint64 and inputs["u"].tolist() == [2**64 - 1]
    assert inputs["t"].tolist() == [True]


def test_unsupported_input_types_are_unimplemented() -> None:
    signatures = {"serving_default": Signature(inputs={"h": "DT_HALF"})}

    assert refusal({"instances": [1.0]}, signatures).message == (
        "Failed to process element: 0 of 'instances' list. Error: UNIMPLEMENTED: Conversion of JSON Value: 1.0 "
        "to type: half"
    )


@pytest.mark.parametrize(
    ("instances", "problem"),
    [
        ([[1, 2], [1]], "Expecting tensor size: 2 but got: 1"),
        ([[[1, 2]], [[1], [2]]], "Expecting shape [1,2] but got: [2,1]"),
        ([[[1, 2], [3]]], "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
        ([[[1], 2]], "JSON Value: 2 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
        ([[1, [2]]], "Encountered list at unexpected level: 1 expected < 1"),
    ],
)
def test_every_instance_must_have_the_same_dense_shape(instances: list, problem: str) -> None:
    single = {"serving_default": Signature(inputs={"x": "DT_INT64"})}

    error = refusal({"instances": instances}, single)

    index = 0 if "level" in problem else 1
    assert (
        error.message == f"Failed to process element: {index} of 'instances' list. Error: INVALID_ARGUMENT: {problem}"
    )


def test_a_b64_first_instance_feeds_only_the_first_input() -> None:
    signatures = {"serving_default": Signature(inputs={"a": "DT_STRING", "b": "DT_STRING"})}

    assert refusal({"instances": [{"b64": "YQ=="}]}, signatures).message == (
        "input size does not match signature: 1!=2 len({a}) != len({a,b}). Sent extra: {}. Missing but required: {b}."
    )


# -- the request document ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"   ", "JSON Parse error: The document is empty. at offset: 3"),
        (b"nope", "JSON Parse error: Invalid value. at offset: 0"),
        (b'{"instances": [1 2]}', "JSON Parse error: Missing a comma or ']' after an array element. at offset: 17"),
        (
            b'{"instances": [1]} x',
            "JSON Parse error: The document root must not be followed by other values. at offset: 19",
        ),
        (b"[1]", "JSON Value: [\n    1\n] Is not object"),
        (
            b'{"signature_name": 1, "instances": [1]}',
            'JSON Value: {\n    "signature_name": 1,\n    "instances": [\n        1\n    ]\n} not formatted '
            "correctly. 'signature_name' key must be a string value.",
        ),
        (b'{"signature_name": "nope", "instances": [1]}', 'Serving signature name: "nope" not found in signature def'),
        (
            b'{"instances": [1], "inputs": [1]}',
            'JSON Value: {\n    "instances": [\n        1\n    ],\n    "inputs": [\n        1\n    ]\n} Not formatted '
            "correctly expecting only one of 'inputs' or 'instances' keys to exist ",
        ),
        (
            b'{"instances": {"fare": 1}}',
            'JSON Value: {\n    "instances": {\n        "fare": 1\n    }\n} Expecting '
            "'instances' to be an list/array",
        ),
        (b'{"instances": []}', "JSON Value: {\n    \"instances\": []\n} No values in 'instances' array"),
        (b'{"examples": [1]}', "Missing 'inputs' or 'instances' key"),
    ],
)
def test_request_documents_tf_serving_refuses(body: bytes, problem: str) -> None:
    error = refusal(body)

    assert (error.code, error.message) == ("INVALID_ARGUMENT", problem)


def test_a_signature_without_inputs_has_no_input_map() -> None:
    signatures = {"serving_default": Signature(inputs={}), "__saved_model_init_op": Signature(inputs={})}

    assert refusal({"instances": [1]}, signatures).message == "Failed to get input map for signature: DEFAULT"
    assert refusal({"signature_name": "__saved_model_init_op", "instances": [1]}, signatures).message == (
        "Failed to get input map for signature: __saved_model_init_op"
    )


# -- columnar format -----------------------------------------------------------------------------


def test_inputs_give_whole_tensors_by_name_and_ignore_other_keys() -> None:
    request = parse(
        {"inputs": {"fare": [[1.0, 2.0]], "company": ["a", "b", "c"], "trip_seconds": 5, "extra": "ignored"}}
    )

    inputs = request.numpy_inputs()
    assert request.columnar
    assert (inputs["fare"].shape, inputs["company"].shape, inputs["trip_seconds"].shape) == ((1, 2), (3,), ())
    assert refusal({"inputs": {"fare": [1.0], "trip_seconds": [1]}}).message == (
        "Missing named input: company in 'inputs' object."
    )
    assert refusal({"inputs": [1.0]}).message == (
        "inputs is a plain value/list, but expecting an object as multiple input tensors required as per tensorinfo_map"
    )
    examples = parse({"signature_name": "serving_examples", "inputs": [{"b64": "YQ=="}, "b"]})
    assert examples.numpy_inputs()["examples"].tolist() == [b"a", b"b"]


# -- responses -----------------------------------------------------------------------------------


def response(outputs: dict[str, tuple[str, np.ndarray]], *, columnar: bool = False) -> object:
    return json.loads(rest.predict_response(outputs, columnar=columnar))


def test_one_output_answers_one_value_per_row() -> None:
    probabilities = np.array([[0.1], [1.0], [1e-5], [0.524979174]], dtype=np.float32)

    body = rest.predict_response({"probabilities": ("DT_FLOAT", probabilities)}, columnar=False)

    assert body == b'{"predictions": [[0.1], [1.0], [1e-05], [0.524979174]]}'


def test_several_outputs_answer_one_object_per_row() -> None:
    outputs = {
        "scores": ("DT_DOUBLE", np.array([0.5, 0.25])),
        "classes": ("DT_STRING", np.array([b"yes", b"no"], dtype=object)),
        "ids_bytes": ("DT_STRING", np.array([b"\x00\x01", b""], dtype=object)),
        "count": ("DT_INT64", np.array([[1, 2], [3, 4]])),
        "flag": ("DT_BOOL", np.array([True, False])),
    }

    assert response(outputs) == {
        "predictions": [
            {"classes": "yes", "count": [1, 2], "flag": True, "ids_bytes": {"b64": "AAE="}, "scores": 0.5},
            {"classes": "no", "count": [3, 4], "flag": False, "ids_bytes": {"b64": ""}, "scores": 0.25},
        ]
    }


def test_columnar_requests_get_whole_output_tensors() -> None:
    assert response({"y": ("DT_FLOAT", np.array([1.5, 2.0], dtype=np.float32))}, columnar=True) == {
        "outputs": [1.5, 2.0]
    }
    assert response(
        {"y": ("DT_INT32", np.array(7, dtype=np.int32)), "z": ("DT_FLOAT", np.zeros((1, 0), dtype=np.float32))},
        columnar=True,
    ) == {"outputs": {"y": 7, "z": [[]]}}


def test_non_finite_floats_are_written_as_tokens() -> None:
    values = np.array([np.nan, np.inf, -np.inf], dtype=np.float32)

    assert rest.predict_response({"y": ("DT_FLOAT", values)}, columnar=False) == (
        b'{"predictions": [NaN, Infinity, -Infinity]}'
    )


@pytest.mark.parametrize(
    ("outputs", "problem"),
    [
        ({}, "Cannot convert empty tensor map to JSON"),
        ({"x": ("DT_FLOAT", np.array(1.0, dtype=np.float32))}, "Tensor name: x has no shape information "),
        (
            {"a": ("DT_FLOAT", np.zeros(2, dtype=np.float32)), "b": ("DT_FLOAT", np.zeros(3, dtype=np.float32))},
            "Tensor name: b has inconsistent batch size: 3 expecting: 2",
        ),
        ({"h": ("DT_HALF", np.zeros(1, dtype=np.float16))}, "Failed to write JSON value for tensor type: half"),
    ],
)
def test_outputs_tf_serving_cannot_write(outputs: dict, problem: str) -> None:
    with pytest.raises(ServingError) as refused:
        rest.predict_response(outputs, columnar=False)

    assert refused.value.message == problem


def test_errors_answer_with_tf_servings_status_and_body() -> None:
    error = ServingError("NOT_FOUND", 'Servable not found for request: Latest(x) "quoted"\n')

    assert error.http_status == 404
    assert ServingError("FAILED_PRECONDITION", "").http_status == 400
    assert ServingError("UNIMPLEMENTED", "").http_status == 501
    assert error.body() == b'{\n    "error": "Servable not found for request: Latest(x) \\"quoted\\"\\n"\n}'
    assert json.loads(error.body()) == {"error": error.message}
