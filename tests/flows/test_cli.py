"""`segopt optimize-all` / `segopt nightly-benchmark`: registered, documented, arguments validated."""

from __future__ import annotations

from typer.testing import CliRunner

from segopt_cli.main import app

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
    assert result.exit_code != 0 and "comma-separated integers" in result.output
    result = runner.invoke(app, ["nightly-benchmark", "--task-runner", "ray", "--batch-sizes", "1"])
    assert result.exit_code != 0 and "valid: threads, dask" in result.output


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


def test_a_bad_dataset_fails_before_anything_is_built(tmp_path):
    for case, (folder, text) in _bad_datasets(tmp_path).items():
        work = tmp_path / "work"
        result = runner.invoke(app, ["optimize-all", str(tmp_path / "zoo"), "--data", str(folder),
                                     "--work-dir", str(work)])  # fmt: skip
        assert result.exit_code == 2, (case, result.output)
        assert text in result.output and "Traceback" not in result.output, case
        assert not work.exists(), case  # nothing built
