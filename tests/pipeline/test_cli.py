from pathlib import Path

from pipeline import cli


def test_unknown_config_key_stops_before_any_output(tmp_path: Path, capsys) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("runner: {kind: local, output_dir: out}\ncolour: blue\n")
    output = tmp_path / "out"
    status = cli.main(["run-local", "--config", str(config), "--output-dir", str(output)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == cli.EXIT_BAD_INPUT
    assert err == [f"error: {config}: unknown key 'colour' (allowed here: pipeline_name, data, schema_path, "
                   "training, evaluation, runner, registry, endpoint)"]  # fmt: skip
    assert not output.exists()


def test_missing_data_folder_stops_before_any_output(tmp_path: Path, capsys) -> None:
    output = tmp_path / "out"
    status = cli.main(["run-local", "--data", str(tmp_path / "nowhere"), "--output-dir", str(output)])
    assert status == cli.EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == f"error: data folder {tmp_path / 'nowhere'} does not exist"
    assert not output.exists()


def test_folder_without_csv_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    status = cli.main(["run-local", "--data", str(tmp_path), "--output-dir", str(tmp_path / "out")])
    assert status == cli.EXIT_BAD_INPUT
    assert "holds no .csv file" in capsys.readouterr().err
