"""`segopt train`: bad input is one clear line on stderr and exit code 2; a tiny run works end to end."""

from __future__ import annotations

from typer.testing import CliRunner

from segopt_cli.main import app


def test_bad_config_value_exits_2(synth_ade, tmp_path):
    result = CliRunner().invoke(
        app, ["train", "--data", str(synth_ade), "--tiny", "--lr", "-1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "lr=-1.0: Input should be greater than 0" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_cell_exits_2(synth_ade, tmp_path):
    result = CliRunner().invoke(
        app, ["train", "--data", str(synth_ade), "--cell", "b9-1-mars", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "unknown cell 'b9-1-mars'; valid cells: b0-512-ade20k" in result.stderr


def test_tiny_cli_run(synth_ade, tmp_path):
    args = [
        "train",
        "--data",
        str(synth_ade),
        "--tiny",
        "--iters",
        "2",
        "--crop",
        "32",
        "--out",
        str(tmp_path / "o"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "tiny-32-ade20k: 2 iterations" in result.stdout
    assert (tmp_path / "o" / "best" / "segopt.json").is_file() and (
        tmp_path / "o" / "state" / "latest.pt"
    ).is_file()
