"""TF Serving's REST predict API as data: a request body becomes input tensors, output tensors a body.

Reproduces TensorFlow Serving 2.16.1 (``tensorflow/serving:2.16.1``, the serving image of registered
models) and 2.15 (the server in Vertex AI's ``tf2-cpu.2-15`` prediction image), read from its source at
tag 2.15.1; between 2.15.1 and 2.16.1 only the TensorFlow version changed (``git diff 2.15.1 2.16.1``
touches WORKSPACE, version.h and the build files), so the rules are the same:

- ``tensorflow_serving/util/json_tensor.cc``: ``FillPredictRequestFromJson`` (row format
  ``instances``, columnar ``inputs``, ``signature_name``, ``{"b64": ...}`` strings, batching,
  type checks per the signature's input dtypes) and ``MakeJsonFromTensors`` (``predictions`` in
  row format, ``outputs`` in columnar format, floats printed by ``WriteDecimal``, ``DT_STRING``
  outputs whose name ends in ``_bytes`` as ``{"b64": ...}``);
- ``model_servers/http_rest_api_handler.cc``: the signature lookup (``GetInfoMap``) and
  ``MakeJsonFromStatus`` (errors as ``{"error": "<message>"}``);
- ``servables/tensorflow/predict_util.cc``: ``VerifyRequestInputsSize``;
- ``model_servers/http_server.cc``: ``ToHTTPStatusCode`` (status code -> HTTP status).

Error messages are TF Serving's, word for word, including the JSON it quotes: rapidjson's
``PrettyWriter`` layout (4-space indent) and number formatting. A nested error is quoted with
``absl::Status::ToString()`` (``INVALID_ARGUMENT: ...``). Known differences: JSON syntax errors
are Python's parser mapped onto rapidjson's messages (Vertex AI always sends valid JSON); a JSON
object with a repeated key keeps its last value (rapidjson keeps both); a ``DT_STRING`` output
that is not UTF-8 and not named ``*_bytes`` is decoded with replacement characters (TF Serving
writes the raw bytes, which is not valid JSON either).

Tensors here are numpy arrays; the module has no TensorFlow dependency, so it is tested without
a model or HTTP.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_SIGNATURE = "serving_default"  # kDefaultServingSignatureDefKey

# net_http::HTTPStatusCode for each absl::StatusCode (http_server.cc, ToHTTPStatusCode).
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}

# google.rpc.Code numbers (tf.errors.OpError.error_code) -> names.
STATUS_NAMES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}

# The dtypes JSON values convert to (AddValueToTensor); any other input dtype is UNIMPLEMENTED.
NUMPY_DTYPES: dict[str, Any] = {
    "DT_FLOAT": np.float32,
    "DT_DOUBLE": np.float64,
    "DT_INT32": np.int32,
    "DT_INT16": np.int16,
    "DT_INT8": np.int8,
    "DT_UINT8": np.uint8,
    "DT_STRING": object,
    "DT_INT64": np.int64,
    "DT_BOOL": np.bool_,
    "DT_UINT32": np.uint32,
    "DT_UINT64": np.uint64,
}


class ServingError(Exception):
    """A non-OK status of TF Serving: its code name and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    def status_string(self) -> str:
        """``absl::Status::ToString()``."""
        return f"{self.code}: {self.message}"

    def body(self) -> bytes:
        """The HTTP body TF Serving answers with (``MakeJsonFromStatus``, pretty-printed)."""
        return f'{{\n    "error": {_json_string(self.message)}\n}}'.encode()


def invalid_argument(*parts: object) -> ServingError:
    return ServingError("INVALID_ARGUMENT", "".join(str(part) for part in parts))


@dataclass(frozen=True)
class Signature:
    """A SignatureDef's inputs and outputs: alias -> DataType name (``DT_FLOAT``)."""

    inputs: Mapping[str, str]
    outputs: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Tensor:
    """A TensorProto as the JSON conversion fills it: dtype, shape and the flat values."""

    dtype: str
    shape: list[int] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)

    def to_numpy(self) -> np.ndarray:
        """``Tensor::FromProto``: int8/int16/uint8 values arrive as int32 and are cast (wrapping)."""
        if self.dtype == "DT_STRING":
            flat = np.empty(len(self.values), dtype=object)
            flat[:] = self.values
            return flat.reshape(self.shape)
        wide = np.float64 if self.dtype in ("DT_FLOAT", "DT_DOUBLE") else None
        flat = np.array(self.values, dtype=wide) if wide else np.array(self.values)
        if not self.values:
            flat = np.zeros(0)
        return flat.astype(NUMPY_DTYPES[self.dtype]).reshape(self.shape)


@dataclass(frozen=True)
class PredictRequest:
    """What TF Serving's predictor receives: the signature and one tensor per input alias."""

    signature_name: str
    inputs: dict[str, Tensor]
    columnar: bool

    def numpy_inputs(self) -> dict[str, np.ndarray]:
        return {alias: tensor.to_numpy() for alias, tensor in self.inputs.items()}


# -- request: FillPredictRequestFromJson ---------------------------------------------------------


def parse_predict_request(body: bytes, signatures: Mapping[str, Signature]) -> PredictRequest:
    """The predict request in ``body``, checked against the signature it names (or the default).

    Raises :class:`ServingError` with TF Serving's status for anything TF Serving refuses before
    running the model, including ``VerifyRequestInputsSize``.
    """
    document = _parse_json(body)
    signature_name = ""
    if "signature_name" in document:
        if not isinstance(document["signature_name"], str):
            raise invalid_argument(
                "JSON Value: ",
                _debug_string(document),
                " not formatted correctly. 'signature_name' key must be a string value.",
            )
        signature_name = document["signature_name"]
    name = signature_name or DEFAULT_SIGNATURE
    signature = signatures.get(name)
    if signature is None:
        raise invalid_argument(f'Serving signature name: "{name}" not found in signature def')
    if not signature.inputs:
        raise invalid_argument("Failed to get input map for signature: ", signature_name or "DEFAULT")
    if "instances" in document:
        if "inputs" in document:
            raise _format_error(
                document, "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "
            )
        instances = document["instances"]
        if not isinstance(instances, list):
            raise _format_error(document, "Expecting 'instances' to be an list/array")
        if not instances:
            raise _format_error(document, "No values in 'instances' array")
        request = PredictRequest(signature_name, _tensors_from_instances(instances, signature.inputs), False)
    elif "inputs" in document:
        request = PredictRequest(signature_name, _tensors_from_inputs(document["inputs"], signature.inputs), True)
    else:
        raise invalid_argument("Missing 'inputs' or 'instances' key")
    check_inputs_size(signature, request)
    return request


def check_inputs_size(signature: Signature, request: PredictRequest) -> None:
    """``VerifyRequestInputsSize`` (predict_util.cc); TF2 SavedModels have no input defaults."""
    sent, expected = set(request.inputs), set(signature.inputs)
    if len(sent) == len(expected):
        return
    raise invalid_argument(
        f"input size does not match signature: {len(sent)}!={len(expected)} "
        f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
        f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
        f"Missing but required: {{{','.join(sorted(expected - sent))}}}."
    )


def _tensors_from_instances(instances: list[Any], input_types: Mapping[str, str]) -> dict[str, Tensor]:
    """``FillTensorMapFromInstancesList``: every element adds one row to each input tensor."""
    if not isinstance(instances[0], dict) and len(input_types) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input tensors required "
            "as per tensorinfo_map"
        )
    elements_are_objects = _is_element_object(instances[0])
    input_names = sorted(input_types)
    tensors: dict[str, Tensor] = {}
    sizes: dict[str, int] = {}
    shapes: dict[str, list[int]] = {}
    for index, element in enumerate(instances):
        if elements_are_objects:
            if not _is_element_object(element):
                raise invalid_argument(f"Expecting object but got list at item {index} of input list")
            for name, value in element.items():
                try:
                    _add_instance_item(value, name, input_types, sizes, shapes, tensors)
                except ServingError as error:
                    raise invalid_argument(
                        f"Failed to process element: {index} key: {name} of 'instances' list. "
                        f"Error: {error.status_string()}"
                    ) from None
            if sorted(element) != input_names:
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: {_debug_string(element)} "
                    f"keys must be equal to: {','.join(input_names)}"
                )
        else:
            if _is_element_object(element):
                raise invalid_argument(f"Expecting value/list but got object at item {index} of input list")
            try:
                _add_instance_item(element, input_names[0], input_types, sizes, shapes, tensors)
            except ServingError as error:
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. Error: {error.status_string()}"
                ) from None
    for name, tensor in tensors.items():
        tensor.shape = [len(instances), *shapes[name]]
    return tensors


def _add_instance_item(
    item: Any,
    name: str,
    input_types: Mapping[str, str],
    sizes: dict[str, int],
    shapes: dict[str, list[int]],
    tensors: dict[str, Tensor],
) -> None:
    """``AddInstanceItem``: the values of one element go after those of the elements before."""
    if name not in input_types:
        raise invalid_argument("JSON object: does not have named input: ", name)
    tensor = tensors.setdefault(name, Tensor(input_types[name]))
    tensor.shape = _dense_shape(item)
    size = _fill(item, 0, tensor)
    if name not in sizes:
        sizes[name], shapes[name] = size, tensor.shape
    elif sizes[name] != size:
        raise invalid_argument(f"Expecting tensor size: {sizes[name]} but got: {size}")
    elif shapes[name] != tensor.shape:
        raise invalid_argument(f"Expecting shape {_shape_string(shapes[name])} but got: {_shape_string(tensor.shape)}")


def _tensors_from_inputs(value: Any, input_types: Mapping[str, str]) -> dict[str, Tensor]:
    """``FillTensorMapFromInputsMap``: one value per input, each a whole tensor (batch included)."""
    if not isinstance(value, dict) or _is_base64_object(value):
        if len(input_types) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors required "
                "as per tensorinfo_map"
            )
        named = {next(iter(sorted(input_types))): value}
    else:
        named = {}
        for name in sorted(input_types):
            if name not in value:
                raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
            named[name] = value[name]
    tensors = {}
    for name, item in named.items():
        tensor = Tensor(input_types[name], _dense_shape(item))
        _fill(item, 0, tensor)
        tensors[name] = tensor
    return tensors


def _dense_shape(value: Any) -> list[int]:
    """``GetDenseTensorShape``: the sizes of the first list at each depth."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, level: int, tensor: Tensor) -> int:
    """``FillTensorProto``: appends the leaves of ``value`` to ``tensor``; returns how many."""
    rank = len(tensor.shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid_argument(
                f"JSON Value: {_debug_string(value)} found at incorrect level: {level + 1} in the JSON DOM. "
                f"Expected at level: {rank}"
            )
        if isinstance(value, dict):
            if tensor.dtype != "DT_STRING":
                raise _type_error(value, tensor.dtype)
            tensor.values.append(_decode_base64_object(value))
        else:
            tensor.values.append(_convert(value, tensor.dtype))
        return 1
    if level >= rank:
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != tensor.shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {tensor.shape[level]}"
        )
    return sum(_fill(item, level + 1, tensor) for item in value)


def _convert(value: Any, dtype: str) -> Any:
    """``AddValueToTensor``: a JSON scalar as a value of ``dtype``, with rapidjson's type tests."""
    if dtype in ("DT_FLOAT", "DT_DOUBLE"):
        if not _is_number(value):
            raise _type_error(value, dtype)
        return float(value)
    accepts = _INTEGER_TESTS.get(dtype)
    if accepts is not None:
        if not (_is_integer(value) and accepts(value)):
            raise _type_error(value, dtype)
        return value
    if dtype == "DT_STRING":
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8", "surrogateescape")
    if dtype == "DT_BOOL":
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    raise ServingError(
        "UNIMPLEMENTED", f"Conversion of JSON Value: {_debug_string(value)} to type: {_type_name(dtype)}"
    )


def _int_range(low: int, high: int) -> Any:
    return lambda value: low <= value < high


# rapidjson's IsInt / IsInt64 / IsUint / IsUint64, per target dtype (int8/16 and uint8 take IsInt).
_INTEGER_TESTS = {
    "DT_INT32": _int_range(-(2**31), 2**31),
    "DT_INT16": _int_range(-(2**31), 2**31),
    "DT_INT8": _int_range(-(2**31), 2**31),
    "DT_UINT8": _int_range(-(2**31), 2**31),
    "DT_INT64": _int_range(-(2**63), 2**63),
    "DT_UINT32": _int_range(0, 2**32),
    "DT_UINT64": _int_range(0, 2**64),
}


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_base64_object(value: Any) -> bool:
    """``IsValBase64Object``: an object whose only key is ``b64``, holding a string."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_element_object(value: Any) -> bool:
    return isinstance(value, dict) and not _is_base64_object(value)


def _decode_base64_object(value: dict[str, Any]) -> bytes:
    """``JsonDecodeBase64Object``, with ``absl::Base64Unescape`` (standard alphabet, padding optional)."""
    if not _is_base64_object(value):
        raise invalid_argument(f"JSON Value: {_debug_string(value)} not formatted correctly for base64 data")
    text = value["b64"]
    try:
        if len(text.rstrip("=")) % 4 == 1:
            raise binascii.Error("truncated")
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_argument("Unable to base64 decode") from None


def _type_error(value: Any, dtype: str) -> ServingError:
    return invalid_argument(
        f"JSON Value: {_debug_string(value)} Type: {_json_type(value)} is not of expected type: {_type_name(dtype)}"
    )


def _format_error(document: Any, message: str) -> ServingError:
    return invalid_argument(f"JSON Value: {_debug_string(document)} {message}")


def _json_type(value: Any) -> str:
    """``JsonTypeString``."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _type_name(dtype: str) -> str:
    """``DataTypeString``: DT_FLOAT -> float."""
    return dtype.removeprefix("DT_").lower()


def _shape_string(shape: list[int]) -> str:
    return "[" + ",".join(str(size) for size in shape) + "]"


# -- JSON parsing (rapidjson with kParseNanAndInfFlag) -------------------------------------------

_RAPIDJSON_MESSAGES = {
    "Expecting value": "Invalid value.",
    "Extra data": "The document root must not be followed by other values.",
    "Expecting property name enclosed in double quotes": "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid \\escape": "Invalid escape character in string.",
    "Invalid \\uXXXX escape": "Incorrect hex digit after \\u escape in string.",
    "Invalid control character at": "Invalid encoding in string.",
}


def _parse_json(body: bytes) -> dict[str, Any]:
    """``ParseJson``: the body must hold one JSON object."""
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    text = body.decode("utf-8", "surrogateescape")
    if not text.strip():
        raise invalid_argument(f"JSON Parse error: The document is empty. at offset: {len(body)}")
    try:
        document = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as error:
        offset = len(text[: error.pos].encode("utf-8", "surrogateescape"))
        raise invalid_argument(f"JSON Parse error: {_rapidjson_message(error, text)} at offset: {offset}") from None
    if not isinstance(document, dict):
        raise _format_error(document, "Is not object")
    return document


def _parse_int(text: str) -> int | float:
    """rapidjson keeps integers in int64/uint64 range; larger ones become doubles."""
    value = int(text)
    return value if -(2**63) <= value < 2**64 else float(text)


def _rapidjson_message(error: json.JSONDecodeError, text: str) -> str:
    if error.msg == "Expecting ',' delimiter":
        closing = "}" if _innermost_bracket(text[: error.pos]) == "{" else "]"
        member = "an object member" if closing == "}" else "an array element"
        return f"Missing a comma or '{closing}' after {member}."
    return _RAPIDJSON_MESSAGES.get(error.msg, error.msg + ".")


def _innermost_bracket(prefix: str) -> str:
    """The bracket still open at the end of ``prefix`` (strings skipped)."""
    stack: list[str] = []
    in_string = escaped = False
    for char in prefix:
        if in_string:
            escaped = not escaped and char == "\\"
            in_string = escaped or char != '"'
        elif char == '"':
            in_string = True
        elif char in "[{":
            stack.append(char)
        elif char in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""


# -- JSON as TF Serving quotes it in errors (JsonValueToString) ----------------------------------


def _debug_string(value: Any) -> str:
    """``JsonValueToString``: a top-level decimal in float range goes through ``WriteDecimal<float>``,
    anything else through rapidjson's ``PrettyWriter`` (4-space indent, shortest doubles)."""
    if isinstance(value, float):
        in_float_range = -3.4028234e38 <= value <= 3.4028234e38
        return write_decimal(value, single=in_float_range)
    return _pretty(value, 0)


def _pretty(value: Any, depth: int) -> str:
    indent, inner = "    " * depth, "    " * (depth + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        members = [f"{inner}{_json_string(key)}: {_pretty(item, depth + 1)}" for key, item in value.items()]
        return "{\n" + ",\n".join(members) + "\n" + indent + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(inner + _pretty(item, depth + 1) for item in value) + "\n" + indent + "]"
    if isinstance(value, str):
        return _json_string(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _rapidjson_double(value)
    return str(value)


def _json_string(text: str) -> str:
    """A JSON string as rapidjson writes it: UTF-8 kept, control characters as uppercase ``\\u00XX``."""
    encoded = json.dumps(text.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), ensure_ascii=False)
    return _CONTROL_ESCAPE.sub(lambda match: match.group(1) + "\\u00" + match.group(2).upper(), encoded)


# json.dumps's \u00xx escapes (an odd number of backslashes before the u).
_CONTROL_ESCAPE = re.compile(r"((?<!\\)(?:\\\\)*)\\u00([0-9a-f]{2})")


def _rapidjson_double(value: float) -> str:
    """``Writer::Double`` (Grisu2 shortest digits, then ``Prettify``)."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("-Infinity" if value < 0 else "Infinity")
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    mantissa, _, exponent = f"{abs(value)!r}".partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + int(exponent or 0) - (len(whole + fraction) - len((whole + fraction).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    return sign + _prettify(digits, point)


def _prettify(digits: str, point: int) -> str:
    """rapidjson's ``Prettify``: ``point`` is where the decimal point goes in ``digits``."""
    length = len(digits)
    if length <= point <= 21:
        return digits + "0" * (point - length) + ".0"
    if 0 < point <= 21:
        return digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return "0." + "0" * -point + digits
    exponent = f"e{point - 1}"
    return (digits + exponent) if length == 1 else f"{digits[0]}.{digits[1:]}{exponent}"


def write_decimal(value: float, *, single: bool) -> str:
    """``WriteDecimal<float|double>``: six significant digits when they round-trip, else full
    precision (9 or 17 digits), with ``.0`` added to whole numbers; NaN and Infinity as tokens."""
    cast = np.float32 if single else np.float64
    typed = cast(value)
    if math.isnan(typed):
        return "NaN"
    if math.isinf(typed):
        return "-Infinity" if typed < 0 else "Infinity"
    text = f"{float(typed):g}"
    if cast(float(text)) != typed:
        text = f"{float(typed):.{9 if single else 17}g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


# -- response: MakeJsonFromTensors ---------------------------------------------------------------


def predict_response(outputs: Mapping[str, tuple[str, np.ndarray]], *, columnar: bool) -> bytes:
    """The JSON body for the output tensors (alias -> (DataType name, values)).

    Row format (``instances``): ``{"predictions": [...]}``, one entry per row of the batch: the
    row itself when the signature has one output, else an object keyed by output alias. Columnar
    format (``inputs``): ``{"outputs": ...}`` with the whole tensors.
    """
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    ordered = dict(sorted(outputs.items()))
    if columnar:
        values = {name: _tensor_json(name, dtype, array) for name, (dtype, array) in ordered.items()}
        body = next(iter(values.values())) if len(values) == 1 else _object(values)
        return ('{"outputs": ' + body + "}").encode()
    batch_size = -1
    for name, (_, array) in ordered.items():
        if array.ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch_size >= 0 and array.shape[0] != batch_size:
            raise invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} expecting: {batch_size}"
            )
        batch_size = array.shape[0]
    rows = []
    for row in range(batch_size):
        items = {name: _tensor_json(name, dtype, array[row]) for name, (dtype, array) in ordered.items()}
        rows.append(next(iter(items.values())) if len(items) == 1 else _object(items))
    return ('{"predictions": [' + ", ".join(rows) + "]}").encode()


def _object(items: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{_json_string(name)}: {value}" for name, value in items.items()) + "}"


def _tensor_json(name: str, dtype: str, value: Any) -> str:
    """``AddTensorValues``: nested lists for every dimension of ``value`` (an array or one element)."""
    if not isinstance(value, np.ndarray):
        return _scalar_json(name, dtype, value)
    if value.ndim == 0:
        return _scalar_json(name, dtype, value[()])
    return "[" + ", ".join(_tensor_json(name, dtype, item) for item in value) + "]"


def _scalar_json(name: str, dtype: str, value: Any) -> str:
    """``AddSingleValueAndAdvance``."""
    if dtype in ("DT_FLOAT", "DT_DOUBLE"):
        return write_decimal(float(value), single=dtype == "DT_FLOAT")
    if dtype in ("DT_INT32", "DT_INT16", "DT_INT8", "DT_UINT8", "DT_INT64", "DT_UINT32", "DT_UINT64"):
        return str(int(value))
    if dtype == "DT_BOOL":
        return "true" if value else "false"
    if dtype == "DT_STRING":
        raw = value if isinstance(value, bytes) else str(value).encode()
        if name.endswith("_bytes"):  # IsNamedTensorBytes
            return '{"b64": "' + base64.b64encode(raw).decode() + '"}'
        return _json_string(raw.decode("utf-8", "replace"))
    raise invalid_argument(f"Failed to write JSON value for tensor type: {_type_name(dtype)}")
