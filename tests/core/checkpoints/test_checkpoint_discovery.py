"""discover() on a mixed folder: the right cell for every checkpoint, a reason for every rejected file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from segopt_cli.main import app
from segopt_core.checkpoints import discover, init_zoo, write_checkpoint
from segopt_core.checkpoints.mmseg1 import canonical_to_mmseg1
from segopt_core.checkpoints.nvlabs import hf_to_nvlabs
from segopt_core.models import build_hf_model
from segopt_core.variants import custom_cell, get_cell, tiny_cell

CITY_NAME = "segformer_mit-b0_8x1_1024x1024_160k_cityscapes_20211208_101857-e7f88502.pth"


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _save_pth(path: Path, state: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state}, path)  # like a real release: no segopt metadata
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, make_zeros_state):
    """Every format, real-size B0/B1 shapes (zeros), mislabels, custom cells and broken files."""
    root = tmp_path_factory.mktemp("mixed")
    for fmt in ("hf", "safetensors", "nvlabs", "mmseg1"):
        init_zoo(root / "zoo", cells=["b0-512-ade20k"], fmt=fmt, tiny=True)
    init_zoo(root / "zoo", cells=["cityscapes"], fmt="nvlabs", tiny=True)
    b0 = _save_pth(
        root / "real/segformer.b0.512x512.ade.160k.pth",
        hf_to_nvlabs(make_zeros_state(get_cell("b0-512-ade20k"))),
    )
    _save_pth(
        root / "mislabeled/segformer.b0.512x512.ade.160k.pth",
        hf_to_nvlabs(make_zeros_state(get_cell("b1-512-ade20k"))),
    )
    city = get_cell("b0-1024-cityscapes")
    name = CITY_NAME
    _save_pth(root / "real" / name, canonical_to_mmseg1(make_zeros_state(city, head="mmseg")))
    voc = custom_cell(get_cell("b0-512-ade20k"), num_labels=21)
    _save_pth(root / "custom/segformer.b0.512x512.voc.pth", hf_to_nvlabs(make_zeros_state(voc)))
    trained = write_checkpoint(
        build_hf_model(tiny_cell("cityscapes", 64)),
        tiny_cell("cityscapes", 64),
        root / "trained/my-run",
        "hf",
    )
    info = json.loads((trained / "segopt.json").read_text())
    (trained / "segopt.json").write_text(json.dumps({**info, "cell": "my-run-city"}))
    broken = root / "broken"
    broken.mkdir()
    (broken / "empty.pth").write_bytes(b"")
    (broken / "corrupt.pth").write_bytes(os.urandom(4096))
    (broken / "truncated.pth").write_bytes(b0.read_bytes()[: b0.stat().st_size // 2])
    tiny_st = root / "zoo/segformer-tiny-finetuned-ade-64-64.safetensors"
    (broken / "truncated.safetensors").write_bytes(tiny_st.read_bytes()[:3000])
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Payload(root / "PWNED")}, broken / "evil.pth")
    torch.save(
        {"conv1.weight": torch.zeros(64, 3, 7, 7), "layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1)},
        broken / "resnet50.pth",
    )
    encoder_only = {
        k: v for k, v in make_zeros_state(get_cell("b0-512-ade20k")).items() if k.startswith("segformer.")
    }
    from safetensors.torch import save_file

    save_file(encoder_only, str(broken / "mit-b0.safetensors"))
    (root / "README.txt").write_text("not weights")
    return root


@pytest.fixture(scope="module")
def report(mixed):
    return discover([mixed])


def _by_path(report, root):
    return {str(a.path.relative_to(root)): a for a in report.accepted}, {
        str(r.path.relative_to(root)): r.reason for r in report.rejected
    }


@pytest.mark.slow  # builds a folder with real-size B0/B1 files
def test_every_checkpoint_gets_the_right_cell(report, mixed):
    accepted, _ = _by_path(report, mixed)
    cells = {path: entry.cell for path, entry in accepted.items()}
    assert cells == {
        "real/segformer.b0.512x512.ade.160k.pth": "b0-512-ade20k",
        f"real/{CITY_NAME}": "b0-1024-cityscapes",
        "mislabeled/segformer.b0.512x512.ade.160k.pth": "b1-512-ade20k",
        "custom/segformer.b0.512x512.voc.pth": "b0-512-ade20k-21cls-custom",
        "trained/my-run": "my-run-city",
        "zoo/segformer-tiny-finetuned-ade-64-64": "tiny-64-ade20k",
        "zoo/segformer-tiny-finetuned-ade-64-64.safetensors": "tiny-64-ade20k",
        "zoo/segformer.tiny.64x64.ade.160k.pth": "tiny-64-ade20k",
        "zoo/segformer_mit-tiny_64x64_160k_ade20k.pth": "tiny-64-ade20k",
        "zoo/segformer.tiny.64x64.city.160k.pth": "tiny-64-cityscapes",
    }
    formats = {path: entry.format for path, entry in accepted.items()}
    assert formats["zoo/segformer_mit-tiny_64x64_160k_ade20k.pth"] == "mmseg1"
    assert formats["real/segformer.b0.512x512.ade.160k.pth"] == "nvlabs"
    assert formats["trained/my-run"] == "hf"
    assert accepted["trained/my-run"].match.spec.dataset.name == "cityscapes"
    assert accepted["zoo/segformer.tiny.64x64.ade.160k.pth"].match.spec == tiny_cell("ade20k", 64)


@pytest.mark.slow  # builds a folder with real-size B0/B1 files
def test_conflicts_and_assumptions_are_stated(report, mixed):
    accepted, _ = _by_path(report, mixed)
    assert any(
        "says B0 but the weights are B1" in w
        for w in accepted["mislabeled/segformer.b0.512x512.ade.160k.pth"].match.warnings
    )
    assert any(
        "21 classes fit no dataset" in w
        for w in accepted["custom/segformer.b0.512x512.voc.pth"].match.warnings
    )
    assert not accepted["real/segformer.b0.512x512.ade.160k.pth"].match.warnings


@pytest.mark.slow  # builds a folder with real-size B0/B1 files
def test_every_rejected_file_has_its_reason(report, mixed):
    _, rejected = _by_path(report, mixed)
    expected = {
        "README.txt": "not a checkpoint file",
        "broken/empty.pth": "empty file",
        "broken/corrupt.pth": "unknown content, not a file torch.save wrote",
        "broken/truncated.pth": "corrupt or truncated",
        "broken/truncated.safetensors": "corrupt or truncated",
        "broken/evil.pth": "refused: loading it would run code (it calls posix.system)",
        "broken/resnet50.pth": "not a SegFormer checkpoint",
        "broken/mit-b0.safetensors": "without a semantic-segmentation decode head",
    }
    assert set(rejected) == set(expected)
    for path, phrase in expected.items():
        assert phrase in rejected[path], (path, rejected[path])
    assert not (mixed / "PWNED").exists()


@pytest.mark.slow  # builds a folder with real-size B0/B1 files
def test_report_table_and_json(report, mixed):
    table = report.table(mixed)
    assert "mislabeled/segformer.b0.512x512.ade.160k.pth" in table and "WARNING" in table
    assert "REJECTED broken/evil.pth" in table
    data = report.to_dict()
    assert len(data["accepted"]) == 10 and len(data["rejected"]) == 8
    json.dumps(data)


def test_cli_zoo_init_and_discover_json(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["zoo", "init", str(tmp_path / "zoo"), "--tiny", "--format", "mmseg", "--cells", "ade,cityscapes"],
    )
    assert result.exit_code == 0, result.output
    (tmp_path / "zoo" / "junk.pth").write_bytes(b"junk")
    result = runner.invoke(app, ["discover", str(tmp_path / "zoo"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert sorted(a["cell"] for a in data["accepted"]) == ["tiny-64-ade20k", "tiny-64-cityscapes"]
    assert {a["format"] for a in data["accepted"]} == {"nvlabs"}
    assert [Path(r["path"]).name for r in data["rejected"]] == ["junk.pth"]
    table = runner.invoke(app, ["discover", str(tmp_path / "zoo")])
    assert "tiny-64-cityscapes" in table.stdout


def test_cli_bad_input_is_a_one_line_error(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["discover", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such file or folder" in result.output
    result = runner.invoke(app, ["zoo", "init", str(tmp_path / "z"), "--cells", "b9"])
    assert result.exit_code == 2 and "valid cells" in result.output
    shutil.rmtree(tmp_path / "z", ignore_errors=True)


def test_cli_zoo_convert_nvlabs_to_hf(tmp_path):
    runner = CliRunner()
    assert (
        runner.invoke(
            app, ["zoo", "init", str(tmp_path), "--tiny", "--format", "nvlabs", "--cells", "ade"]
        ).exit_code
        == 0
    )
    src = tmp_path / "segformer.tiny.64x64.ade.160k.pth"
    result = runner.invoke(app, ["zoo", "convert", str(src), str(tmp_path / "hf-out"), "--format", "hf"])
    assert result.exit_code == 0, result.output
    from segopt_core.checkpoints import load_checkpoint

    a, b = load_checkpoint(src), load_checkpoint(tmp_path / "hf-out")
    assert (a.spec, b.format) == (b.spec, "hf")
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(a.model(x), b.model(x), atol=1e-4, rtol=1e-3)  # only the LayerNorm eps differs
    bad = runner.invoke(app, ["zoo", "convert", str(src), str(tmp_path / "x.pth"), "--format", "mmseg1"])
    assert bad.exit_code == 2 and "mmseg1 needs an MMSegSegformer" in bad.output


@pytest.fixture
def deny(monkeypatch):
    """deny(folder=..., file=...): what chmod 000 does to a non-root user (tests run as root, who is never
    refused): the folder cannot be listed nor its entries reached; the file cannot be opened."""
    import builtins

    folders: list[str] = []
    files: list[str] = []
    real_scandir, real_stat, real_open = os.scandir, os.stat, builtins.open

    def refuse(path, inside: bool) -> None:
        text = os.path.abspath(os.fspath(path)) if isinstance(path, (str, os.PathLike)) else ""
        if any(text == f or (inside and text.startswith(f + os.sep)) for f in folders):
            raise PermissionError(13, "Permission denied", text)

    def scandir(path="."):
        refuse(path, inside=False)
        return real_scandir(path)

    def stat(path, *args, **kwargs):
        if isinstance(path, (str, os.PathLike)) and os.path.dirname(os.path.abspath(path)) in folders:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_stat(path, *args, **kwargs)

    def open_(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(os.fspath(file)) in files:
            raise PermissionError(13, "Permission denied", os.fspath(file))
        refuse(file, inside=True)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(builtins, "open", open_)

    def add(folder: Path | None = None, file: Path | None = None) -> None:
        if folder is not None:
            folders.append(str(folder.resolve()))
        if file is not None:
            files.append(str(file.resolve()))

    return add


def _zoo_with_unreadable_parts(tmp_path: Path) -> tuple[Path, Path, Path]:
    zoo = tmp_path / "zoo"
    init_zoo(zoo, cells=["ade"], fmt="nvlabs", tiny=True)
    locked = zoo / "locked"
    init_zoo(locked, cells=["ade"], fmt="nvlabs", tiny=True)
    secret = next(zoo.glob("*.pth"))
    return zoo, locked, secret


def test_unreadable_folders_and_files_are_rejected_as_permission_denied(tmp_path, deny):
    zoo, locked, secret = _zoo_with_unreadable_parts(tmp_path)
    deny(folder=locked, file=secret)
    report = discover([zoo])
    reasons = {r.path.resolve(): r.reason for r in report.rejected}
    assert set(reasons) == {locked.resolve(), secret.resolve()}, reasons
    assert all(reason.startswith("permission denied") for reason in reasons.values())
    result = CliRunner().invoke(app, ["discover", str(zoo)])
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert f"REJECTED {secret.name}: permission denied" in result.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_chmod_000_is_rejected_as_permission_denied(tmp_path):
    zoo, locked, secret = _zoo_with_unreadable_parts(tmp_path)
    locked.chmod(0), secret.chmod(0)
    try:
        reasons = {r.path.resolve(): r.reason for r in discover([zoo]).rejected}
    finally:
        locked.chmod(0o755), secret.chmod(0o644)
    assert set(reasons) == {locked.resolve(), secret.resolve()}
    assert all(reason.startswith("permission denied") for reason in reasons.values())


def test_a_name_the_weights_contradict_is_a_warning_when_loading(tmp_path, caplog):
    from segopt_core.checkpoints import load_checkpoint

    spec = tiny_cell("ade20k", 64)
    path = write_checkpoint(
        build_hf_model(spec, 0), spec, tmp_path / "segformer.b2.512x512.ade.pth", "nvlabs"
    )
    with caplog.at_level("WARNING", logger="segopt_core.checkpoints.loading"):
        loaded = load_checkpoint(path)
    assert loaded.match.conflicts and "says B2" in loaded.match.conflicts[0]
    assert any("says B2" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="segopt_core.checkpoints.loading"):
        load_checkpoint(path, loaded.spec)  # the caller chose the cell: nothing to warn about
    assert not caplog.records
