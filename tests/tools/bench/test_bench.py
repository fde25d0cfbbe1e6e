import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.bench import bench
from tools.bench import bytecode as bench_bytecode
from tools.bench import compare as bench_compare
from tools.bench import report as bench_report
from tools.bench import template as bench_template

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


def test_copy_is_compiled_to_bytecode(template_copy) -> None:
    copy = template_copy[0]
    assert bench_bytecode.sources_without_bytecode(copy) == []
    assert (copy / "models" / "keras_model" / "__pycache__" / "model.cpython-310.pyc").is_file()


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
        "keras": "tf_keras 2.16.0",
    }
    write = f"import json, pathlib; pathlib.Path({str(summary)!r}).write_text(json.dumps({content!r}))"
    run = bench.measure([sys.executable, "-c", write], tmp_path, summary, tmp_path / "ok.log")
    assert run["components"] == {"A": 1.23, "B": 2.0}
    assert run["cached_components"] == ["B"]
    assert run["metrics"] == {"auc": 0.9} and run["blessed"] is True
    assert run["keras"] == "tf_keras 2.16.0"
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
    """Two repeats, in the order they ran (the result lists the template's modes first)."""
    return {
        "template_default": [fake_run(100, 2000, 0.55, T=90), fake_run(50, 2000, 0.56, T=45)],
        "ours": [fake_run(80, 1000, 0.95, X=70), fake_run(60, 3000, 0.94, X=50)],
        "ours_cached": [fake_run(10, 800, 0.95), fake_run(10, 800, 0.95)],
        "template_legacy": [fake_run(160, 1000, 0.55, T=150), fake_run(120, 1500, 0.56, T=110)],
    }


def test_pair_ratios_and_their_medians_per_keras_mode() -> None:
    order = [bench.repeat_order(index, ["default", "legacy"]) for index in range(2)]
    result = bench.build_result(baseline_runs(), "sample", None, order)
    assert list(result["variants"]) == ["template_default", "template_legacy", "ours", "ours_cached"]
    assert result["pairs"]["default"] == [
        {"wall": 0.8, "peak_rss": 0.5, "cached_wall": 0.1},
        {"wall": 1.2, "peak_rss": 1.5, "cached_wall": 0.2},
    ]
    assert result["pairs"]["legacy"] == [
        {"wall": 0.5, "peak_rss": 1.0, "cached_wall": 0.062},
        {"wall": 0.5, "peak_rss": 2.0, "cached_wall": 0.083},
    ]
    assert result["pair_ratios"] == {
        "default": {"wall": 1.0, "peak_rss": 1.0, "cached_wall": 0.15},
        "legacy": {"wall": 0.5, "peak_rss": 1.5, "cached_wall": 0.073},
    }
    assert result["keras_modes"]["default"]["TF_USE_LEGACY_KERAS"] is None
    assert result["keras_modes"]["legacy"]["TF_USE_LEGACY_KERAS"] == "1"
    assert result["order"][1] == ["template_legacy", "ours", "ours_cached", "template_default"]
    assert result["repeats"] == 2
    assert json.loads(json.dumps(result)) == result


def test_tables_give_each_mode_its_pairs_and_a_summary_line() -> None:
    result = bench.build_result(baseline_runs(), "sample", None)
    tables = bench_report.result_tables(result)
    assert "TFX taxi template, cold, Keras 3 (default) (2 run(s))" in tables
    assert "TFX taxi template, cold, tf_keras (legacy) (2 run(s))" in tables and "cached re-run" in tables
    default_pairs = tables.split("ratio = ours / TFX taxi template, cold, Keras 3 (default)")[1]
    legacy_pairs = tables.split("ratio = ours / TFX taxi template, cold, tf_keras (legacy)")[1]
    assert next(line for line in default_pairs.splitlines() if line.startswith("median")).split() == [
        "median",
        "1.00",
        "1.00",
        "0.15",
    ]
    assert next(line for line in legacy_pairs.splitlines() if line.startswith("1 ")).split() == [
        *["1", "160.0", "80.0", "0.50"],
        *["1000", "1000", "1.00", "10.0", "0.06"],
    ]
    summary = tables.split("ours / template: median (min-max) of pairs")[1].splitlines()
    assert "1.00 (0.80-1.20)" in summary[1] and "0.15 (0.10-0.20)" in summary[1]
    assert summary[2].startswith("  legacy:") and "0.50 (0.50-0.50)" in summary[2]


def test_pairs_need_as_many_runs_of_each() -> None:
    runs = baseline_runs()
    runs["ours"].pop()
    with pytest.raises(ValueError):
        bench.build_result(runs, "sample", None)


def test_one_keras_mode_pairs_with_that_mode_only() -> None:
    runs = baseline_runs()
    del runs["template_default"]
    result = bench.build_result(runs, "sample", None)
    assert list(result["pairs"]) == ["legacy"] and list(result["keras_modes"]) == ["legacy"]
    assert "Keras 3" not in bench_report.result_tables(result)


def test_without_baseline_there_are_no_pairs() -> None:
    runs = baseline_runs()
    del runs["template_default"], runs["template_legacy"]
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


def test_keras_modes_option(capsys) -> None:
    assert bench.keras_modes_arg("legacy, default,legacy") == ["legacy", "default"]
    with pytest.raises(SystemExit):
        bench.main(["--baseline", "--keras-modes", "keras2"])
    assert "Keras modes are default, legacy" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--keras-modes", "legacy"])
    assert "needs --baseline" in capsys.readouterr().err


def test_each_repeat_alternates_the_side_that_runs_first() -> None:
    both = ["default", "legacy"]
    assert bench.repeat_order(0, both) == ["template_default", "ours", "ours_cached", "template_legacy"]
    assert bench.repeat_order(1, both) == ["template_legacy", "ours", "ours_cached", "template_default"]
    assert bench.repeat_order(2, both) == bench.repeat_order(0, both)
    assert bench.repeat_order(0, ["legacy"]) == ["template_legacy", "ours", "ours_cached"]
    assert bench.repeat_order(1, ["legacy"]) == ["ours", "ours_cached", "template_legacy"]
    assert bench.repeat_order(1, []) == bench.repeat_order(0, []) == ["ours", "ours_cached"]
    # Over two repeats each template mode runs once before and once after our cold run.
    for modes in (both, ["default"]):
        orders = [bench.repeat_order(index, modes) for index in range(2)]
        for mode in modes:
            before = [order.index(f"template_{mode}") < order.index("ours") for order in orders]
            assert sorted(before) == [False, True]


def test_run_bench_runs_each_repeat_back_to_back_in_a_fresh_folder(tmp_path: Path, capsys) -> None:
    package = tmp_path / "ourpkg"
    package.mkdir()
    (package / "mod.py").write_text("A = 1\n")
    calls: list[tuple[Path, str]] = []

    def measure_variant(work: Path, name: str) -> dict:
        assert work.is_dir()
        if len(calls) % 4 == 0:  # a repeat starts: compiled before timing
            assert bench_bytecode.sources_without_bytecode(package) == []
        calls.append((work, name))
        if len(calls) == 6:  # repeat 2 runs while a source is edited
            (package / "mod.py").write_text("A = 22\n")
        return fake_run(len(calls), 100)

    bench_runs = bench.run_bench(3, ["default", "legacy"], measure_variant, [package])
    runs, orders = bench_runs.runs, bench_runs.orders
    assert [name for _, name in calls] == [name for order in orders for name in order]
    assert orders[0] == bench.repeat_order(0, ["default", "legacy"]) and len(orders) == 3
    works = [work for work, _ in calls]
    assert len(set(works[:4])) == 1 and works[4] != works[0]
    assert [run["wall_seconds"] for run in runs["ours_cached"]] == [3, 7, 11]
    assert bench_runs.edited == [[], ["ourpkg/mod.py"], []]
    err = capsys.readouterr().err
    assert "repeat 3/3 template_default" in err and "sources edited during repeat 2: ourpkg/mod.py" in err


def test_keras_env_sets_or_removes_tf_use_legacy_keras() -> None:
    base = {"TF_USE_LEGACY_KERAS": "1", "PATH": "/bin"}
    assert bench_template.keras_env("default", base) == {"PATH": "/bin"}
    assert bench_template.keras_env("legacy", {"PATH": "/bin"}) == base
    with pytest.raises(ValueError, match="keras2"):
        bench_template.keras_env("keras2", base)
    assert bench.child_env()["TF_USE_LEGACY_KERAS"] == "1"  # ours


def test_each_mode_runs_its_keras(tmp_path: Path) -> None:
    """The environments the bench gives the template's runs select Keras 3 and tf_keras."""
    script = "from tools.bench.template_run import keras_in_use; print(keras_in_use())"
    children = {
        mode: subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=bench.REPO,
            env=bench.child_env(mode),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for mode in bench_template.KERAS_MODES
    }
    printed = {mode: child.communicate(timeout=120)[0].strip().splitlines()[-1] for mode, child in children.items()}
    assert printed["default"].startswith("keras 3.")
    assert printed["legacy"].startswith("tf_keras 2.")


def verbose_import(folder: Path, module: str) -> str:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-v", "-c", f"import {module}"], cwd=folder, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def test_compiled_sources_are_imported_from_bytecode(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text("VALUE = 1\n")
    sources = sorted(str(path) for path in package.glob("*.py"))
    assert sorted(map(str, bench_bytecode.sources_without_bytecode(package))) == sources
    assert sorted(bench_bytecode.imports_compiled_from_source(verbose_import(tmp_path, "pkg.mod"))) == sources
    assert not (package / "__pycache__").exists()  # PYTHONDONTWRITEBYTECODE: the import wrote nothing

    assert bench_bytecode.compile_sources([package]) == 2
    assert bench_bytecode.sources_without_bytecode(package) == []
    assert bench_bytecode.imports_compiled_from_source(verbose_import(tmp_path, "pkg.mod")) == []
    status = bench_bytecode.venv_status(tmp_path)
    assert status["sources_without_pyc"] == 0 and status["examples"] == []

    (package / "mod.py").write_text("VALUE = 22\n")  # within the same second, maybe: the size tells
    assert bench_bytecode.sources_without_bytecode(package) == [package / "mod.py"]
    assert bench_bytecode.imports_compiled_from_source(verbose_import(tmp_path, "pkg.mod")) == [str(package / "mod.py")]
    bench_bytecode.compile_sources([package])
    assert bench_bytecode.imports_compiled_from_source(verbose_import(tmp_path, "pkg.mod")) == []


def test_bytecode_handling_is_in_the_result_and_tables() -> None:
    warmup = {"seconds": 9.5, "compiled_from_source": []}
    assert bench.bytecode_report(warmup, [[]], False)["compiled_before_timing"] == [
        "pipeline/",
        "components/",
        "models/",
    ]
    bytecode = bench.bytecode_report(warmup, [[], ["runners/cli.py"]], True)
    assert bytecode["compiled_before_timing"] == ["pipeline/", "components/", "models/", "each template copy"]
    assert bytecode["venv"]["site_packages"].endswith("site-packages")
    result = bench.build_result(baseline_runs(), "sample", None, bytecode=bytecode)
    lines = bench_report.result_tables(result).splitlines()
    assert lines[-2].startswith("bytecode: PYTHONDONTWRITEBYTECODE=")
    assert "warm-up imports compiled from source: 0" in lines[-2]
    assert lines[-1] == "warning: repeat 2 ran while our sources changed: runners/cli.py"
