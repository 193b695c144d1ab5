"""`segopt optimize-all` / `segopt nightly-benchmark`: registered, documented, arguments validated."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from segopt_cli.main import app
from segopt_core.errors import OptionError

runner = CliRunner()


def test_commands_are_registered_with_their_options():
    result = runner.invoke(app, ["optimize-all", "--help"])
    assert result.exit_code == 0
    for option in ("--cells", "--backends", "--precisions", "--batch-sizes", "--data", "--limit",
                   "--task-runner", "--dask-address", "--work-dir", "--report-dir"):  # fmt: skip
        assert option in result.output
    result = runner.invoke(app, ["nightly-benchmark", "--help"])
    assert (
        result.exit_code == 0 and "--fail-on-regression" in result.output and "--threshold" in result.output
    )


def test_bad_arguments_fail_before_any_flow_runs():
    result = runner.invoke(app, ["optimize-all", "--batch-sizes", "1,x"])
    assert result.exit_code == 2 and "expected comma-separated integers from 1 to 1024" in result.output
    result = runner.invoke(app, ["nightly-benchmark", "--task-runner", "ray", "--batch-sizes", "1"])
    assert result.exit_code != 0 and "valid: threads, dask" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--precisions", "int8"], "unknown precision 'int8' (did you mean int8-dynamic or int8-static?)"),
        (["--backends", "onnx-runtime"], "unknown backend 'onnx-runtime' (did you mean onnxruntime?)"),
        (["--backends", "tensorflow"], "unknown backend 'tensorflow'; valid: torch, torch-compile,"),
        (["--variants", "torch-fp33"], "unknown variant 'torch-fp33' (did you mean torch-fp32"),
        (["--variants", "onnxruntime-fp33"], "unknown variant 'onnxruntime-fp33'"),
        (["--cells", "b9-999-mars"], "unknown cell pattern 'b9-999-mars'; valid:"),
        (["--batch-sizes", "0"], "--batch-sizes '0': expected comma-separated integers from 1 to 1024"),
    ],
)
def test_mistyped_options_exit_2_with_one_line_before_anything_runs(tmp_path, args, message):
    """`--precisions int8` used to exit 0 after building torch-fp32; the others printed tracebacks."""
    result = runner.invoke(app, ["optimize-all", str(tmp_path), "--work-dir", str(tmp_path / "w"), *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert not (tmp_path / "w").exists()  # no flow ran: nothing discovered, built or reported


def test_nightly_refuses_unknown_variants_and_cells(tmp_path):
    (tmp_path / "artifacts").mkdir()
    work = ["--work-dir", str(tmp_path)]
    result = runner.invoke(app, ["nightly-benchmark", *work, "--variants", "onnxruntime-fp33"])
    assert result.exit_code == 2 and "unknown variant 'onnxruntime-fp33'" in result.stderr
    result = runner.invoke(app, ["nightly-benchmark", *work, "--cells", "b9-999-mars"])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback(tmp_path):
    result = runner.invoke(app, ["--debug", "optimize-all", str(tmp_path), "--precisions", "int8"])
    assert result.exit_code == 1 and isinstance(result.exception, OptionError)
    assert "unknown precision 'int8'" in str(result.exception)


def test_a_deployment_run_with_bad_parameters_fails_fast_with_the_same_message(tmp_path):
    """Deployments call the flow directly (no CLI): the flow checks its parameters before any task."""
    from flows.nightly import nightly_benchmark
    from flows.optimize_all import optimize_all

    with pytest.raises(OptionError, match=r"unknown precision 'int8' \(did you mean"):
        optimize_all.fn(paths=[str(tmp_path)], precisions=["int8"], work_dir=str(tmp_path / "w"))
    with pytest.raises(OptionError, match="unknown cell pattern 'b9-999-mars'"):
        optimize_all.fn(paths=[str(tmp_path)], cells=["b9-999-mars"], work_dir=str(tmp_path / "w"))
    with pytest.raises(OptionError, match="batch sizes must be integers from 1 to 1024"):
        nightly_benchmark.fn(batch_sizes=[0], work_dir=str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


def test_unexpected_errors_are_one_line_with_a_hint_and_missing_extras_name_the_extra():
    from segopt_cli.common import error_line
    from segopt_core.data import DatasetError

    assert error_line(DatasetError("a.png: bad")) == ("a.png: bad", 2)
    assert error_line(ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")) == (
        "ONNX Runtime is not installed: install segopt[cpu] or segopt[gpu]",
        1,
    )
    message, code = error_line(ZeroDivisionError("division by zero\nmore"))
    assert (
        code == 1 and message.startswith("ZeroDivisionError: division by zero more") and "--debug" in message
    )


def _bad_datasets(root):
    """name -> (dataset folder, expected text) for each way a validation set can be unusable."""
    import numpy as np
    from PIL import Image

    def ade(name, pairs):
        base = root / name
        for stem, (image, mask) in pairs.items():
            for sub, array, ext in (("images", image, ".jpg"), ("annotations", mask, ".png")):
                if array is not None:
                    (base / sub / "validation").mkdir(parents=True, exist_ok=True)
                    Image.fromarray(array).save(base / sub / "validation" / f"{stem}{ext}")
        return base

    img, mask = np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), np.uint8)
    (root / "empty" / "images" / "validation").mkdir(parents=True)
    (root / "empty" / "annotations" / "validation").mkdir(parents=True)
    corrupt = ade("corrupt", {"a": (img, mask)})
    (corrupt / "images" / "validation" / "a.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return {
        "missing": (root / "nope", "does not exist"),
        "empty": (root / "empty", "no usable image/mask pairs"),
        "no mask": (ade("nomask", {"a": (img, mask), "b": (img, None)}), "image without mask"),
        "size": (ade("size", {"a": (img, np.ones((4, 8), np.uint8))}), "differs from image"),
        "corrupt": (corrupt, "corrupt or truncated"),
        "range": (ade("range", {"a": (img, np.full((8, 8), 200, np.uint8))}), "200 outside the class range"),
    }


def test_a_bad_dataset_fails_before_anything_is_built(tmp_path, tiny_checkpoint):
    tiny_checkpoint(tmp_path / "zoo" / "a.safetensors")
    for case, (folder, text) in _bad_datasets(tmp_path).items():
        work = tmp_path / "work"
        result = runner.invoke(app, ["optimize-all", str(tmp_path / "zoo"), "--data", str(folder),
                                     "--work-dir", str(work)])  # fmt: skip
        assert result.exit_code == 2, (case, result.output)
        assert text in result.output and "Traceback" not in result.output, case
        assert not work.exists(), case  # nothing built
