"""Loading and checking configs; expectations about the committed files are derived from them and from
models/ (the taxi example's own values: tests/example/)."""

import json
from pathlib import Path

import pytest
import yaml

from components.serving_checks import Task
from models import features, label
from pipeline import pipeline as tfx_pipeline
from pipeline.config import (
    BASE_CONFIG,
    LOCAL_CONFIG,
    ConfigError,
    VertexRunnerConfig,
    check_against_model,
    load_config,
    read_serving_instances,
    vertex_config_path,
)
from pipeline.deploy_config import EndpointConfig


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "env.yaml"
    path.write_text(text)
    return path


def test_committed_configs_are_valid_and_fit_the_model() -> None:
    config = load_config()
    assert config.runner.kind == "local"
    # The metrics apply to the task of models/label.py, the slice features are columns of the curated
    # schema, the serving instances carry the features of models/features.py (one-line ConfigError if not).
    instances = tfx_pipeline.check_model_fit(config)
    assert instances == read_serving_instances(config.serving_instances_path) and instances
    assert config.data.missing_tokens == tuple(dict.fromkeys(["", *config.data.missing_values]))


def test_later_file_and_overrides_win(tmp_path: Path) -> None:
    env = write(tmp_path, "training: {train_steps: 7}\n")
    config = load_config([BASE_CONFIG, LOCAL_CONFIG, env], {"data.path": "/data", "runner.output_dir": "/out"})
    assert config.training.train_steps == 7
    assert config.training.batch_size == load_config().training.batch_size
    assert config.data.path == "/data"
    assert config.runner.output_dir == "/out"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour: blue\n", "env.yaml: unknown key 'colour' (allowed here: pipeline_name,"),
        ("training: {stepz: 3}\n", "env.yaml: unknown key 'training.stepz' (allowed here: train_steps,"),
        (
            "training: {train_steps: many}\n",
            "env.yaml: training.train_steps: input should be a valid integer",
        ),
        (
            "evaluation: {min_auc: 0.9}\n",
            "env.yaml: unknown key 'evaluation.min_auc' (allowed here: metrics, blessing,",
        ),
        (
            "evaluation: {blessing: {metric: f1}}\n",
            "env.yaml: evaluation.blessing.metric: expected one of accuracy, auc, auc_precision_recall, mae, mse, rmse",
        ),
        ("evaluation: {metrics: [auc, f1]}\n", "env.yaml: evaluation.metrics: expected names from accuracy, auc,"),
        (
            "evaluation: {blessing: {metric: auc, minimum: null}}\n",
            "env.yaml: evaluation.blessing: minimum is required: the bar auc must reach to be blessed (higher is",
        ),
        (
            "evaluation: {blessing: {metric: rmse, maximum: null}}\n",
            "env.yaml: evaluation.blessing: maximum is required: the bar rmse must reach to be blessed (lower is",
        ),
        (
            "evaluation: {blessing: {metric: auc, minimum: 0.99, maximum: 0.9}}\n",
            "env.yaml: evaluation.blessing: minimum (0.99) must be below maximum (0.9)",
        ),
        (
            "evaluation: {blessing: {max_drop: -0.1}}\n",
            "env.yaml: evaluation.blessing.max_drop: input should be greater",
        ),
        ("data: {missing_values: [NA, 7]}\n", "env.yaml: data.missing_values.1: input should be a valid string"),
        ("runner: {beam: {direct_running_mode: fast}}\n", "env.yaml: runner.beam.direct_running_mode: input"),
        # Bounds TFX can honour: the eval split is a whole number of 100 hash buckets ...
        ("data: {eval_fraction: 0.001}\n", "env.yaml: data.eval_fraction: expected 0.01 to 0.99 in steps of 0.01"),
        ("data: {eval_fraction: 0.999}\n", "env.yaml: data.eval_fraction: expected 0.01 to 0.99 in steps of 0.01"),
        ("data: {eval_fraction: 0.333}\n", "env.yaml: data.eval_fraction: expected 0.01 to 0.99 in steps of 0.01"),
        # ... and steps are 32-bit integers in TrainArgs and EvalArgs.
        ("training: {train_steps: 1e20}\n", "env.yaml: training.train_steps: input should be a valid integer"),
        ("training: {train_steps: 1.0e+20}\n", "env.yaml: training.train_steps: input should be a valid integer"),
        (
            "training: {eval_steps: 2147483648}\n",
            "env.yaml: training.eval_steps: input should be less than or equal to 2147483647, as TFX holds it in a "
            "32-bit integer",
        ),
        # Strict types: no quiet conversions, finite numbers only.
        (
            "training: {train_steps: true}\n",
            "env.yaml: training.train_steps: input should be a valid integer (got True)",
        ),
        (
            "training: {batch_size: 256.0}\n",
            "env.yaml: training.batch_size: input should be a valid integer (got 256.0)",
        ),
        ("training: {learning_rate: .inf}\n", "env.yaml: training.learning_rate: input should be a finite number"),
        ("training: {learning_rate: .nan}\n", "env.yaml: training.learning_rate: input should be a finite number"),
        (
            "evaluation: {blessing: {minimum: '0.9'}}\n",
            "env.yaml: evaluation.blessing.minimum: input should be a valid",
        ),
        ("training: [1\n", "env.yaml: not valid YAML at line 2, column 1"),
        ("- a list\n", "env.yaml: expected a mapping of keys at the top level, got list"),
    ],
)
def test_bad_config_gives_one_line_naming_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    env = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config([BASE_CONFIG, LOCAL_CONFIG, env])
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(str(env))
    assert expected.split("env.yaml", 1)[1] in message


@pytest.mark.parametrize("fraction", [0.01, 0.33, 0.5, 0.99])
def test_eval_fractions_of_whole_hash_buckets_are_accepted(tmp_path: Path, fraction: float) -> None:
    env = write(tmp_path, f"data: {{eval_fraction: {fraction}}}\ntraining: {{learning_rate: 1}}\n")
    config = load_config([BASE_CONFIG, LOCAL_CONFIG, env])
    assert config.data.eval_fraction == fraction
    assert config.training.learning_rate == 1.0  # an integer is a number


def test_missing_required_key_names_the_key(tmp_path: Path) -> None:
    env = write(tmp_path, "pipeline_name: demo\n")
    with pytest.raises(ConfigError, match=r"missing required key 'runner'"):
        load_config([BASE_CONFIG, env])


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.yaml: cannot read config file"):
        load_config([BASE_CONFIG, tmp_path / "nope.yaml"])


# -- Vertex AI environments ---------------------------------------------------------------------


def vertex_dev(tmp_path: Path, text: str) -> tuple[Path, list[Path]]:
    env = write(tmp_path, text)
    return env, [BASE_CONFIG, vertex_config_path("dev"), env]


def test_committed_vertex_configs_are_valid() -> None:
    dev = load_config([BASE_CONFIG, vertex_config_path("dev")])
    prod = load_config([BASE_CONFIG, vertex_config_path("prod")])
    for config in (dev, prod):
        assert isinstance(config.runner, VertexRunnerConfig)
        assert config.data.path.startswith("gs://")
        assert config.runner.dataflow.use_public_ips is False
        assert config.runner.image is None  # given by --image at compile time
    assert (dev.runner.enable_cache, prod.runner.enable_cache) == (True, False)
    assert dev.runner.schedule is None
    assert prod.runner.schedule is not None
    for env, config in (("dev", dev), ("prod", prod)):
        # README "Make it yours", step 6: the environments carry the pipeline's name.
        assert {"app": config.pipeline_name, "env": env}.items() <= config.runner.labels.items()
        assert config.runner.dataflow_temp_location == f"{config.runner.pipeline_root}/dataflow/tmp"
        assert config.runner.dataflow_staging_location == f"{config.runner.pipeline_root}/dataflow/staging"


def test_vertex_settings_override_like_local_ones(tmp_path: Path) -> None:
    image = "europe-docker.pkg.dev/p/r/n@sha256:" + "f" * 64
    env, files = vertex_dev(tmp_path, "runner: {dataflow: {temp_location: gs://scratch/tmp}}\n")
    config = load_config(files, {"runner.image": image})
    assert config.runner.dataflow_temp_location == "gs://scratch/tmp"
    # The rest of dataflow comes from vertex-dev.yaml.
    dev = load_config([BASE_CONFIG, vertex_config_path("dev")]).runner
    assert config.runner.dataflow.max_workers == dev.dataflow.max_workers
    assert config.runner.dataflow.service_account == dev.dataflow.service_account
    assert config.runner.image == image


def test_unknown_environment_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"vertex-staging.yaml: no such environment 'staging' \(known: dev, prod"):
        vertex_config_path("staging")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("runner: {kind: cloud}\n", "runner.kind: expected one of 'local', 'vertex' (got 'cloud')"),
        ("runner: {colour: blue}\n", "unknown key 'runner.colour' (allowed here: kind, project, region,"),
        ("runner: {dataflow: {workers: 3}}\n", "unknown key 'runner.dataflow.workers' (allowed here: service_account,"),
        ("runner: {project: My_Project}\n", "runner.project: expected a project ID (6 to 30 lowercase"),
        ("runner: {pipeline_root: /tmp/root}\n", "runner.pipeline_root: expected a gs:// path such as gs://BUCKET"),
        ("runner: {service_account: me@gmail.com}\n", "runner.service_account: expected a service account email"),
        (
            "runner: {network: projects/my-tfx-dev/global/networks/vpc}\n",
            "runner.network: expected projects/<project NUMBER>",
        ),
        ("runner: {labels: {Team: ml}}\n", "runner.labels: label key 'Team' must start with a lowercase letter"),
        ("runner: {labels: {team: ML Ops}}\n", "runner.labels: label team: value 'ML Ops' may use only lowercase"),
        ("runner: {enable_cache: sometimes}\n", "runner.enable_cache: input should be a valid boolean"),
        ("runner: {schedule: {cron: daily}}\n", "runner.schedule.cron: expected five cron fields"),
        (
            "runner: {schedule: {cron: '0 3 * * 1', max_concurrent_runs: 0}}\n",
            "runner.schedule.max_concurrent_runs: input should be greater",
        ),
        (
            "runner: {image: 'gcr.io/p/my-model:latest'}\n",
            "runner.image: image 'gcr.io/p/my-model:latest' is given by tag ':latest'",
        ),
        ("runner: {dataflow: {max_workers: 0}}\n", "runner.dataflow.max_workers: input should be greater than 0"),
        (
            "runner: {dataflow: {subnetwork: dataflow}}\n",
            "runner.dataflow.subnetwork: expected regions/<region>/subnetworks/<name>",
        ),
        ("runner: {dataflow: {temp_location: /tmp}}\n", "runner.dataflow.temp_location: expected a gs:// path"),
        (
            "runner: {training: {accelerator_type: NVIDIA_L4}}\n",
            "runner.training: accelerator_type NVIDIA_L4 needs accelerator_count",
        ),
        (
            "runner: {training: {accelerator_count: 2}}\n",
            "runner.training: accelerator_count needs an accelerator_type",
        ),
        (
            "runner: {training: {accelerator_type: l4, accelerator_count: 1}}\n",
            "runner.training.accelerator_type: expected an accelerator type",
        ),
        (
            "data: {path: /data/my-data}\n",
            "data.path: runner 'vertex' reads it from Google Cloud, expected a gs:// folder",
        ),
        (
            "schema_path: /home/me/schema.pbtxt\n",
            "schema_path: runner 'vertex' reads it from the pipeline image, expected a path relative to the repository",
        ),
        (
            "schema_path: ../elsewhere/schema.pbtxt\n",
            "schema_path: runner 'vertex' reads it from the pipeline image",
        ),
    ],
)
def test_bad_vertex_config_gives_one_line_naming_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    env, files = vertex_dev(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(files)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{env}: ")
    assert expected in message


def test_vertex_runner_without_data_path_names_the_file_choosing_vertex(tmp_path: Path) -> None:
    dev = yaml.safe_load(vertex_config_path("dev").read_text())
    dev["data"]["path"] = None
    env = write(tmp_path, yaml.safe_dump(dev))
    with pytest.raises(ConfigError) as error:
        load_config([BASE_CONFIG, env])
    assert str(error.value) == (
        f"{env}: data.path: runner 'vertex' reads it from Google Cloud, expected a gs:// folder of CSV files (got None)"
    )


def test_vertex_runner_needs_its_required_keys(tmp_path: Path) -> None:
    env = write(tmp_path, "runner: {kind: vertex, project: my-project}\n")
    with pytest.raises(ConfigError, match=r"env.yaml: missing required key 'runner.region'"):
        load_config([BASE_CONFIG, env])
    no_kind = write(tmp_path, "runner: {output_dir: out}\n")
    with pytest.raises(ConfigError, match=r"missing required key 'runner.kind' \(one of 'local', 'vertex'\)"):
        load_config([BASE_CONFIG, no_kind])


# -- The config against the model's declarations and the data's columns --------------------------

COLUMNS = {"fare": "float", "trip_start_hour": "int", "payment_type": "string", "tips": "float"}


def checked(tmp_path: Path, text: str, columns: dict | None = COLUMNS, task: Task = label.TASK) -> list:
    env = write(tmp_path, text)
    config = load_config([BASE_CONFIG, LOCAL_CONFIG, env])
    return check_against_model(config, task=task, features=["fare", "trip_start_hour"], columns=columns)


def test_a_slice_feature_that_is_not_a_column_names_the_file_and_the_column(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        checked(tmp_path, "evaluation: {slice_features: [trip_start_hr]}\n")
    assert str(error.value) == (
        f"{tmp_path / 'env.yaml'}: evaluation.slice_features: 'trip_start_hr' is not a column of the schema "
        "(its columns: fare, payment_type, tips, trip_start_hour)"
    )


def test_metrics_must_apply_to_the_task(tmp_path: Path) -> None:
    expected = (
        f"{tmp_path / 'env.yaml'}: evaluation.blessing.metric: 'auc' does not apply to regression (choose from "
        "mae, mse, rmse) (the task in models/label.py: regression: one number per row)"
    )
    with pytest.raises(ConfigError) as error:
        checked(tmp_path, "evaluation: {blessing: {metric: auc, minimum: 0.9}}\n", task=Task.regression())
    assert str(error.value) == expected
    # A key the environment file leaves alone is reported in the file that set it.
    blessing = load_config().evaluation.blessing
    # Classification metrics are higher-is-better, regression's errors lower-is-better: the other kind's task.
    other_task = Task.regression() if blessing.higher_is_better else Task.binary(("a", "b"))
    with pytest.raises(ConfigError) as error:
        checked(tmp_path, "{}\n", task=other_task)
    message = f"{BASE_CONFIG}: evaluation.blessing.metric: '{blessing.metric}' does not apply to {other_task.kind} "
    assert str(error.value).startswith(message)
    with pytest.raises(ConfigError, match=r"env.yaml: evaluation.metrics: 'auc_precision_recall' does not apply to "):
        checked(tmp_path, "evaluation: {metrics: [auc_precision_recall]}\n", task=Task.multiclass(["a", "b", "c"]))


def test_serving_instances_carry_the_features_with_their_columns_types(tmp_path: Path) -> None:
    # Local runs have no endpoint section: the default file, the committed instances of the model.
    config = load_config([BASE_CONFIG, LOCAL_CONFIG])
    assert config.serving_instances_path.name == "smoke_instances.json"
    committed = check_against_model(config, task=label.TASK, features=features.RAW_FEATURE_KEYS, columns=None)
    assert committed == json.loads(config.serving_instances_path.read_text()) and committed
    assert all(set(instance) == set(features.RAW_FEATURE_KEYS) for instance in committed)

    good = {"fare": 6.05, "trip_start_hour": 23}
    path = tmp_path / "instances.json"
    # Instances of a model of two features; the configured slice features are not columns of COLUMNS.
    evaluation = config.evaluation.model_copy(update={"slice_features": []})
    endpoint_config = EndpointConfig.model_validate(endpoint(path))
    with_file = config.model_copy(update={"endpoint": endpoint_config, "evaluation": evaluation})
    assert with_file.serving_instances_path == path
    path.write_text(json.dumps([good]))
    assert check_against_model(with_file, task=label.TASK, features=list(good), columns=COLUMNS) == [good]
    for instances, problem in [
        ([good | {"trip_start_hour": 23.5}], "instance 0: trip_start_hour must be an integer"),
        ([{"fare": 6.05}], "instance 0: missing features ['trip_start_hour'], unknown features []"),
    ]:
        path.write_text(json.dumps(instances))
        with pytest.raises(ConfigError) as error:
            check_against_model(with_file, task=label.TASK, features=list(good), columns=COLUMNS)
        assert str(error.value).startswith(f"{path}: {problem}")
        assert "\n" not in str(error.value)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"instances.json: not JSON"):
        read_serving_instances(path)


def endpoint(path: Path) -> dict:
    return {"endpoint_id": "e", "display_name": "e", "smoke_test": {"instances_file": str(path)}}
