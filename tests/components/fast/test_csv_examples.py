"""The block-wise CsvExampleGen executor writes what TFX's own executor writes, split for split."""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow as tf
from google.protobuf import json_format
from tfx.components.example_gen.csv_example_gen import executor as tfx_csv_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts

from components.fast import csv_examples

HEADER = "id,count,amount,mixed,name,big,padded,sparse\n"
ROWS = [
    "1,3,2.5,1,Flash Cab,1,7,\n",
    '2,,0.1,2.5,"Cab, Inc.",99999999999999999999,8,4\n',
    "3,7,,3,,2, 9,\n",
    '4,-2,1e3,4,"two\nlines",3,10,\n',
    "5,0,-0.0,5,Yellow Cab Services,4,11,6\n",
]


HASHED_INPUT = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern="*.csv")])
HASHED_OUTPUT = example_gen_pb2.Output(
    split_config=example_gen_pb2.SplitConfig(
        splits=[
            example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=2),
            example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
        ]
    )
)


def run_executor(
    executor_class: type,
    input_base: Path,
    output: Path,
    input_config: example_gen_pb2.Input = HASHED_INPUT,
    output_config: example_gen_pb2.Output = HASHED_OUTPUT,
) -> dict[str, list[bytes]]:
    examples = standard_artifacts.Examples()
    examples.uri = str(output)
    properties = {
        "input_base": str(input_base),
        "input_config": json_format.MessageToJson(input_config),
        "output_config": json_format.MessageToJson(output_config),
        "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE,
        "output_file_format": example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    }
    executor_class().Do({}, {"examples": [examples]}, properties)
    splits = artifact_utils.decode_split_names(examples.split_names)
    return {split: read_split(output / f"Split-{split}") for split in splits}


def read_split(folder: Path) -> list[bytes]:
    records = []
    for path in sorted(folder.glob("*.gz")):
        for record in tf.data.TFRecordDataset(str(path), compression_type="GZIP"):
            records.append(tf.train.Example.FromString(record.numpy()).SerializeToString(deterministic=True))
    return sorted(records)


def write_csv(folder: Path, name: str, rows: list[str], header: str = HEADER) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(header + "".join(rows))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    # Two files: the column types are decided over both ("mixed" is INT in one, FLOAT in the other).
    write_csv(folder, "a.csv", ROWS[:1] + ROWS[2:])
    write_csv(folder, "b.csv", ROWS[1:2] + [f"{i},{i},{i}.5,{i},x{i},{i},{i}," + "\n" for i in range(6, 40)])
    return folder


def test_writes_the_same_examples_in_the_same_splits_as_tfx(data: Path, tmp_path: Path) -> None:
    ours = run_executor(csv_examples.Executor, data, tmp_path / "ours")
    reference = run_executor(tfx_csv_executor.Executor, data, tmp_path / "reference")
    assert len(ours["train"]) + len(ours["eval"]) == 39
    assert ours["train"] and ours["eval"]
    assert ours == reference
    # One file per CSV file and split, nothing left under a temporary name.
    assert sorted(path.name for path in (tmp_path / "ours" / "Split-train").iterdir()) == [
        "data_tfrecord-00000-of-00002.gz", "data_tfrecord-00001-of-00002.gz"
    ]  # fmt: skip


def test_input_splits_are_written_as_they_are_like_tfx(data: Path, tmp_path: Path) -> None:
    (data / "holdout").mkdir()
    (data / "b.csv").rename(data / "holdout" / "b.csv")
    input_config = example_gen_pb2.Input(
        splits=[
            example_gen_pb2.Input.Split(name="train", pattern="*.csv"),
            example_gen_pb2.Input.Split(name="holdout", pattern="holdout/*.csv"),
        ]
    )
    no_split_config = example_gen_pb2.Output()
    ours = run_executor(csv_examples.Executor, data, tmp_path / "ours", input_config, no_split_config)
    reference = run_executor(tfx_csv_executor.Executor, data, tmp_path / "reference", input_config, no_split_config)
    assert set(ours) == {"train", "holdout"}
    assert len(ours["holdout"]) == 35
    assert ours == reference


def test_a_file_that_fails_midway_leaves_nothing_behind(data: Path, tmp_path: Path) -> None:
    written = 0

    def fail_on_the_third_example(record: bytes) -> int:
        nonlocal written
        written += 1
        if written == 3:
            raise OSError("disk full")
        return 0

    out = tmp_path / "out"
    out.mkdir()
    shard = csv_examples.Shard(str(data / "a.csv"), [str(out / "train.gz"), str(out / "eval.gz")])
    column_types = csv_examples.infer_column_types(shard.path)
    with pytest.raises(OSError, match="disk full"):
        csv_examples.write_shards(shard, column_types, fail_on_the_third_example)
    assert list(out.iterdir()) == []


def test_splitting_by_a_feature_is_refused_with_a_reason(data: Path, tmp_path: Path) -> None:
    output_config = example_gen_pb2.Output()
    output_config.CopyFrom(HASHED_OUTPUT)
    output_config.split_config.partition_feature_name = "id"
    with pytest.raises(ValueError, match="partition_feature_name is not supported"):
        run_executor(csv_examples.Executor, data, tmp_path / "ours", output_config=output_config)


def test_column_types_follow_tfx_rules(data: Path) -> None:
    types = csv_examples.merge_column_types(csv_examples.infer_column_types(str(path)) for path in data.glob("*.csv"))
    assert types == {
        "id": "INT",
        "count": "INT",
        "amount": "FLOAT",
        "mixed": "FLOAT",
        "name": "STRING",
        "big": "STRING",  # beyond int64
        "padded": "INT",  # " 9": Python's int() accepts it, Arrow's parser does not
        "sparse": "INT",
    }


def test_a_column_without_any_value_is_a_feature_without_values(tmp_path: Path) -> None:
    write_csv(tmp_path, "a.csv", ["1,\n", "2,\n", "3,\n"], header="id,empty\n")
    ours = run_executor(csv_examples.Executor, tmp_path, tmp_path / "ours")
    reference = run_executor(tfx_csv_executor.Executor, tmp_path, tmp_path / "reference")
    assert ours == reference
    example = tf.train.Example.FromString((ours["train"] + ours["eval"])[0])
    assert "empty" in example.features.feature
    assert example.features.feature["empty"].WhichOneof("kind") is None


def test_files_with_different_headers_are_refused(tmp_path: Path) -> None:
    write_csv(tmp_path, "a.csv", ["1,2\n"], header="id,count\n")
    write_csv(tmp_path, "b.csv", ["1,2\n"], header="id,amount\n")
    with pytest.raises(csv_examples.CsvTypeError, match="different headers"):
        csv_examples.merge_column_types(csv_examples.infer_column_types(str(path)) for path in tmp_path.glob("*.csv"))


def test_rows_are_read_in_blocks(tmp_path: Path) -> None:
    write_csv(tmp_path, "a.csv", [f"{i},{i}.5\n" for i in range(2_000)], header="id,amount\n")
    path = str(tmp_path / "a.csv")
    blocks = list(csv_examples.read_blocks(path, block_bytes=4_096))
    assert len(blocks) > 1
    encoded = list(csv_examples.encode_file(path, csv_examples.infer_column_types(path)))
    rows = [tf.train.Example.FromString(record).features.feature for record in encoded]
    ids = [row["id"].int64_list.value[0] for row in rows]
    assert sorted(ids) == list(range(2_000))
    assert ids != sorted(ids)  # shuffled within each block
    assert all(row["amount"].float_list.value == [row["id"].int64_list.value[0] + 0.5] for row in rows)
    assert list(csv_examples.encode_file(path, csv_examples.infer_column_types(path))) == encoded


@pytest.mark.parametrize(
    ("args", "in_process"),
    [
        (None, True),
        (["--runner=DirectRunner", "--direct_running_mode=in_memory"], True),
        (["--runner=DataflowRunner", "--project=p", "--region=r"], False),
    ],
)
def test_the_global_shuffle_is_skipped_only_when_beam_runs_in_this_process(args, in_process) -> None:
    assert csv_examples._runs_in_process(args) is in_process


def test_other_runners_convert_as_the_stock_executor_does_splitting_files_by_line() -> None:
    from components import csv_examples as stock_csv_examples

    ours = csv_examples.Executor().GetInputSourceToExamplePTransform()
    assert ours is stock_csv_examples.Executor().GetInputSourceToExamplePTransform()


def test_a_byte_order_mark_before_the_header_is_skipped(data: Path, tmp_path: Path) -> None:
    with_mark = tmp_path / "with-mark"
    with_mark.mkdir()
    for source in data.glob("*.csv"):
        (with_mark / source.name).write_bytes(b"\xef\xbb\xbf" + source.read_bytes())  # Excel's "CSV UTF-8"
    assert run_executor(csv_examples.Executor, with_mark, tmp_path / "marked") == run_executor(
        csv_examples.Executor, data, tmp_path / "plain"
    )
