import shlex
import subprocess
from pathlib import Path

import pytest

from pipeline.paths import REPO_ROOT
from runners import cli, errors


def test_unknown_config_key_stops_before_any_output(tmp_path: Path, capsys) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("runner: {kind: local, output_dir: out}\ncolour: blue\n")
    output = tmp_path / "out"
    status = cli.main(["run-local", "--config", str(config), "--output-dir", str(output)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == errors.EXIT_BAD_INPUT
    assert err == [f"error: {config}: unknown key 'colour' (allowed here: pipeline_name, data, schema_path, "
                   "training, evaluation, runner, fast_paths, registry, endpoint)"]  # fmt: skip
    assert not output.exists()


def test_missing_data_folder_stops_before_any_output(tmp_path: Path, capsys) -> None:
    output = tmp_path / "out"
    status = cli.main(["run-local", "--data", str(tmp_path / "nowhere"), "--output-dir", str(output)])
    assert status == errors.EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == f"error: data folder {tmp_path / 'nowhere'} does not exist"
    assert not output.exists()


def test_folder_without_csv_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    status = cli.main(["run-local", "--data", str(tmp_path), "--output-dir", str(tmp_path / "out")])
    assert status == errors.EXIT_BAD_INPUT
    assert "holds no .csv file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "variables", "expected"),
    [
        (
            "run-local",
            {"DATA": "/tmp/my trips", "OUT": "/tmp/it's out", "CONFIG": "configs/my env.yaml", "WAIT": "1"},
            ["run-local", "--config", "configs/my env.yaml", "--data", "/tmp/my trips", "--output-dir",
             "/tmp/it's out", "--wait-for-lock"],
        ),
        ("schema", {"DATA": "/tmp/my trips"}, ["schema", "--config", "configs/local.yaml", "--data", "/tmp/my trips"]),
        ("report", {"OUT": "/tmp/my out"}, ["report", "--config", "configs/local.yaml", "--output-dir", "/tmp/my out"]),
    ],
)  # fmt: skip
def test_make_passes_paths_with_spaces_and_quotes_as_one_argument(
    target: str, variables: dict[str, str], expected: list[str]
) -> None:
    assignments = [f"{name}={value}" for name, value in variables.items()]
    printed = subprocess.run(
        ["make", "--no-print-directory", "-n", target, *assignments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    command = " ".join(line.rstrip("\\").strip() for line in printed.splitlines() if line.strip())
    command = command[command.index("-m pipeline ") :]
    assert shlex.split(command)[2:] == expected  # as bash splits it
