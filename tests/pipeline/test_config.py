from pathlib import Path

import pytest

from pipeline.config import BASE_CONFIG, LOCAL_CONFIG, ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "env.yaml"
    path.write_text(text)
    return path


def test_committed_configs_are_valid() -> None:
    config = load_config()
    assert config.runner.kind == "local"
    assert config.evaluation.min_auc >= 0.9
    assert config.data.path is None


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
            "evaluation: {min_auc: 1.5}\n",
            "env.yaml: evaluation.min_auc: input should be less than or equal to 1",
        ),
        ("runner: {beam: {direct_running_mode: fast}}\n", "env.yaml: runner.beam.direct_running_mode: input"),
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


def test_missing_required_key_names_the_key(tmp_path: Path) -> None:
    env = write(tmp_path, "pipeline_name: demo\n")
    with pytest.raises(ConfigError, match=r"missing required key 'runner'"):
        load_config([BASE_CONFIG, env])


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.yaml: cannot read config file"):
        load_config([BASE_CONFIG, tmp_path / "nope.yaml"])
