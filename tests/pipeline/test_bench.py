import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from pipeline import bench, bench_compare, bench_report, bench_template

EXPECTED_COMPONENTS = [
    "CsvExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "ExampleValidator",
    "Transform",
    "Trainer",
    "Resolver",
    "Evaluator",
    "Pusher",
]


@pytest.fixture(scope="module")
def template_copy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("template")
    data, out = root / "data", root / "out"
    return bench_template.copy_template(root / "copy", data, out), data, out


def module_constants(path: Path) -> dict[str, object]:
    constants = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            constants[node.targets[0].id] = node.value.value
    return constants


def test_template_is_found_in_the_installed_tfx_package() -> None:
    source = bench_template.template_source()
    assert source.parts[-5:] == ("site-packages", "tfx", "experimental", "templates", "taxi")
    assert (source / "local_runner.py").is_file()


def test_copy_enables_every_component(template_copy) -> None:
    from tfx import v1 as tfx

    copy, data, _ = template_copy
    spec = importlib.util.spec_from_file_location("copied_template_pipeline", copy / "pipeline" / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.create_pipeline(
        pipeline_name="t",
        pipeline_root=str(copy.parent / "root"),
        data_path=str(data),
        preprocessing_fn="models.preprocessing.preprocessing_fn",
        run_fn="models.keras_model.model.run_fn",
        train_args=tfx.proto.TrainArgs(num_steps=1),
        eval_args=tfx.proto.EvalArgs(num_steps=1),
        eval_accuracy_threshold=0.6,
        serving_model_dir=str(copy.parent / "serving"),
    )
    # Listed in topological order: the Resolver, which has no inputs, may come anywhere.
    assert sorted(type(component).__name__ for component in built.components) == sorted(EXPECTED_COMPONENTS)
    validator = next(c for c in built.components if type(c).__name__ == "ExampleValidator")
    assert {node.id for node in validator.upstream_nodes} == {"StatisticsGen", "SchemaGen"}


def test_copy_adds_auc_and_keeps_the_accuracy_threshold(template_copy) -> None:
    copied = (template_copy[0] / "pipeline" / "pipeline.py").read_text()
    original = (bench_template.template_source() / "pipeline" / "pipeline.py").read_text()
    assert copied.count("class_name='AUC'") == 1
    threshold = original[original.index("class_name='BinaryAccuracy'") : original.index("evaluator = ")]
    assert threshold in copied


def test_copy_runs_on_the_given_data_and_output_with_local_imports(template_copy) -> None:
    copy, data, out = template_copy
    constants = module_constants(copy / "local_runner.py")
    assert constants["DATA_PATH"] == str(data.resolve())
    assert constants["OUTPUT_DIR"] == str(out.resolve())
    for source in copy.rglob("*.py"):
        text = source.read_text()
        assert "tfx.experimental.templates" not in text, source
        assert "{{PIPELINE_NAME}}" not in text, source
    assert module_constants(copy / "pipeline" / "configs.py")["PIPELINE_NAME"] == bench_template.PIPELINE_NAME
    assert (copy / "models" / "keras_model" / "model.py").is_file()
    assert not list(copy.rglob("*_test.py"))


def test_template_that_changed_shape_is_reported() -> None:
    with pytest.raises(bench_template.TemplateError):
        bench_template.enable_all_components("components = []\n")
    with pytest.raises(bench_template.TemplateError):
        bench_template.point_runner_at("DATA_PATH = 'x'\n", Path("/d"), Path("/o"))


def test_run_child_measures_each_child_peak_separately(tmp_path: Path) -> None:
    big = [sys.executable, "-c", "b = bytearray(300 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"]
    small = [sys.executable, "-c", "pass"]
    _, big_peak, code = bench.run_child(big, tmp_path, tmp_path / "big.log")
    assert code == 0 and big_peak > 300
    wall, small_peak, code = bench.run_child(small, tmp_path, tmp_path / "small.log")
    assert code == 0 and small_peak < 100 and wall > 0
    assert bench.run_child([sys.executable, "-c", "raise SystemExit(4)"], tmp_path, tmp_path / "x.log")[2] == 4


def test_measure_reads_the_summary_and_reports_failures(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    content = {
        "timings": [
            {"component_id": "A", "seconds": 1.234, "cached": False},
            {"component_id": "B", "seconds": 2.0, "cached": True},
        ],
        "metrics": {"auc": 0.9},
        "rows_per_split": {"train": 2},
        "blessed": True,
    }
    write = f"import json, pathlib; pathlib.Path({str(summary)!r}).write_text(json.dumps({content!r}))"
    run = bench.measure([sys.executable, "-c", write], tmp_path, summary, tmp_path / "ok.log")
    assert run["components"] == {"A": 1.23, "B": 2.0}
    assert run["cached_components"] == ["B"]
    assert run["metrics"] == {"auc": 0.9} and run["blessed"] is True
    failing = [sys.executable, "-c", "print('boom'); raise SystemExit(1)"]
    with pytest.raises(bench.BenchError, match="boom"):
        bench.measure(failing, tmp_path, summary, tmp_path / "bad.log")


def fake_run(wall: float, rss: float, auc: float | None = None, **components: float) -> dict:
    return {
        "wall_seconds": wall,
        "peak_rss_mb": rss,
        "components": components,
        "metrics": {} if auc is None else {"auc": auc},
    }


def test_aggregate_medians_min_max() -> None:
    runs = [fake_run(10, 1000, 0.9, A=1, B=5), fake_run(30, 1200, 0.8, A=3), fake_run(20, 900, None, A=2, B=7)]
    agg = bench_report.aggregate(runs)
    assert agg["wall_seconds"] == {"median": 20, "min": 10, "max": 30}
    assert agg["peak_rss_mb"] == {"median": 1000, "min": 900, "max": 1200}
    assert agg["auc"] == {"median": pytest.approx(0.85), "min": 0.8, "max": 0.9}
    assert agg["components"]["A"] == {"median": 2, "min": 1, "max": 3}
    assert agg["components"]["B"] == {"median": 5, "min": 0.0, "max": 7}
    assert bench_report.aggregate([fake_run(1, 1)])["auc"] is None


def baseline_runs() -> dict[str, list[dict]]:
    return {
        "template": [fake_run(100, 2000, 0.55, T=90), fake_run(50, 2000, 0.56, T=45)],
        "ours": [fake_run(80, 1000, 0.95, X=70), fake_run(60, 3000, 0.94, X=50)],
        "ours_cached": [fake_run(10, 800, 0.95), fake_run(10, 800, 0.95)],
    }


def test_pair_ratios_and_their_medians() -> None:
    result = bench.build_result(baseline_runs(), "sample", None)
    assert result["pairs"] == [
        {"wall": 0.8, "peak_rss": 0.5, "cached_wall": 0.1},
        {"wall": 1.2, "peak_rss": 1.5, "cached_wall": 0.2},
    ]
    assert result["pair_ratios"] == {"wall": 1.0, "peak_rss": 1.0, "cached_wall": 0.15}
    assert result["repeats"] == 2
    tables = bench_report.result_tables(result)
    assert "TFX taxi template, cold (2 run(s))" in tables and "cached re-run" in tables
    assert tables.splitlines()[-1].split() == ["median", "1.00", "1.00", "0.15"]
    json.dumps(result)


def test_pairs_need_as_many_runs_of_each() -> None:
    runs = baseline_runs()
    runs["ours"].pop()
    with pytest.raises(ValueError):
        bench.build_result(runs, "sample", None)


def test_without_baseline_there_are_no_pairs() -> None:
    runs = baseline_runs()
    del runs["template"]
    result = bench.build_result(runs, "sample", 150_000)
    assert "pairs" not in result and result["rows"] == 150_000
    assert "ratio" not in bench_report.result_tables(result)


def test_compare_ratios_b_over_a(tmp_path: Path, capsys) -> None:
    a = bench.build_result({"ours": [fake_run(100, 2000, 0.9, X=10, Y=4)]}, "a", None)
    b = bench.build_result({"ours": [fake_run(50, 3000, 0.99, X=5, Z=1)]}, "b", None)
    comparison = bench_compare.compare(a, b)
    assert comparison["wall_seconds"] == {"a": 100, "b": 50, "ratio": 0.5}
    assert comparison["peak_rss_mb"]["ratio"] == 1.5
    assert comparison["auc"]["ratio"] == 1.1
    assert comparison["components"]["X"]["ratio"] == 0.5
    assert comparison["components"]["Y"] == {"a": 4, "b": None, "ratio": None}
    assert comparison["components"]["Z"] == {"a": None, "b": 1, "ratio": None}
    with pytest.raises(ValueError, match="template"):
        bench_compare.compare(a, b, "template")
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert bench_compare.main([str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    assert "total wall s" in capsys.readouterr().out
    assert bench_compare.main([str(tmp_path / "a.json"), str(tmp_path / "missing.json")]) == 2


def test_bench_takes_either_data_or_rows() -> None:
    with pytest.raises(SystemExit):
        bench.main(["--data", "x", "--rows", "10"])
