"""Exit codes, command by command (issue #23, item 4): bad input 2, failed work 1, one `error:` line; and
nothing half-left after a failure (item 6)."""

from __future__ import annotations

import builtins
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from segopt_cli.main import app


class _Code:
    """A pickle that would call eval if it were ever loaded without weights_only."""

    def __reduce__(self):
        return (builtins.eval, ("1 + 1",))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_model, tiny_spec):
    """A tiny checkpoint, a NaN one, a torch artifact (and one with replaced weights), a small dataset."""
    from segopt_core.backends import ArtifactStore, VariantOptions
    from segopt_core.checkpoints import write_checkpoint
    from segopt_core.data import synth_dataset
    from tests.flows.conftest import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("exit-codes")
    artifact = ArtifactStore(root / "store").get_or_build(
        tiny_model, VariantOptions("torch", "fp32"), spec=tiny_spec
    )
    broken = root / "broken-artifact"
    shutil.copytree(artifact.path, broken)
    weights = broken / "source.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")  # same size, other bytes: refused on load
    evil = root / "evil" / "state" / "latest.pt"
    evil.parent.mkdir(parents=True)
    torch.save({"version": 1, "x": _Code()}, evil)
    return {
        "ckpt": write_checkpoint(tiny_model, tiny_spec, root / "tiny.safetensors", "safetensors"),
        "nan": write_tiny_checkpoint(root / "nan.safetensors", nan=True),
        "artifact": artifact.path,
        "broken": broken,
        "data": synth_dataset(root / "data", "ade20k", n_train=2, n_val=2, size=(64, 64), seed=0),
        "evil": evil.parents[1],
        "root": root,
    }


# (command line with placeholders, exit code, text of the one error line)
CASES = [
    (
        "benchmark --artifact {broken} --batch-sizes 1 --iters 1 --warmup 0 --no-lock",
        1,
        "no row could be measured (1 failed)",
    ),
    ("benchmark --artifact {tmp} --batch-sizes 1", 2, "not a segopt artifact"),
    ("optimize {nan} --backend torch --out {tmp}/store", 1, "failed verification"),
    ("optimize {ckpt} --backend torch --precision int4 --out {tmp}/store", 2, "unknown precision 'int4'"),
    ("predict --artifact {broken} {tmp}/x.png --out {tmp}/masks", 2, "contents differ from the metadata"),
    ("predict --artifact {artifact} {tmp}/missing.png", 2, "no such image file"),
    (
        "train --data {data} --tiny --out {evil} --resume",
        2,
        "refused: loading it would run code (it calls eval)",
    ),
    ("train --data {data} --tiny --device cuda --out {tmp}/t", 2, "device 'cuda' asked for"),
    ("train --data {data} --tiny --out {tmp}/t --resume", 2, "no training state to resume from"),
    ("evaluate --checkpoint {tmp}/nope.pth --data {data}", 2, "nope.pth"),
    ("discover {tmp}/nope", 2, "no such file or folder"),
    ("zoo init {root} --tiny --cells b0-512-ade20k --format safetensors", 2, "exists; pass --overwrite"),
    ("data synth --out {data} --n-train 1 --n-val 1 --size 32x32", 2, "exists and is not empty"),
]


@pytest.mark.parametrize(("line", "code", "message"), CASES, ids=[c[0][:40] for c in CASES])
def test_exit_codes_walk_the_commands(inputs, tmp_path, line, code, message):
    if "x.png" in line:
        import cv2

        cv2.imwrite(str(tmp_path / "x.png"), np.zeros((8, 8, 3), np.uint8))
    if line.startswith("zoo init"):
        from segopt_core.checkpoints import init_zoo

        init_zoo(inputs["root"], ["b0-512-ade20k"], "safetensors", tiny=True, overwrite=True)
    values = {**{k: str(v) for k, v in inputs.items()}, "tmp": str(tmp_path)}
    result = CliRunner().invoke(app, [part.format(**values) for part in line.split()])
    assert result.exit_code == code, (line, result.output)
    errors = [row for row in result.stderr.splitlines() if row.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], (line, result.stderr)
    assert "Traceback" not in result.output and "weights_only=False" not in result.output
    assert not (tmp_path / "masks").exists()  # a failed --out leaves no empty folder


def test_zoo_init_and_data_synth_follow_one_rule_for_existing_output(tmp_path):
    """Both refuse to replace what is there without --overwrite, and replace it with it."""
    zoo = [
        "zoo",
        "init",
        str(tmp_path / "zoo"),
        "--tiny",
        "--cells",
        "b0-512-ade20k",
        "--format",
        "safetensors",
    ]
    synth = [
        "data",
        "synth",
        "--out",
        str(tmp_path / "data"),
        "--n-train",
        "1",
        "--n-val",
        "1",
        "--size",
        "32x32",
    ]
    for args in (zoo, synth):
        assert CliRunner().invoke(app, args).exit_code == 0
        refused = CliRunner().invoke(app, args)
        assert refused.exit_code == 2 and "--overwrite" in refused.stderr, refused.output
        assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_a_bad_ground_truth_mask_fails_before_any_output_is_written(inputs, tmp_path):
    """Used to exit 2 after the frames before the bad mask, leaving a summary JSON and an overlay."""
    from PIL import Image

    from segopt_core.data.video_synth import synth_video

    clip = synth_video(tmp_path / "clip.mp4", 6, (64, 64), 12.0, 0)
    bad = sorted(clip.masks_dir.glob("*.png"))[3]
    Image.new("L", (32, 32)).save(bad)  # the wrong size, four frames in
    out = tmp_path / "out" / "o.mp4"
    args = ["video", str(clip.path), "--checkpoint", str(inputs["ckpt"]), "--out", str(out),
            "--gt-masks", str(clip.masks_dir), "--masks-dir", str(tmp_path / "out" / "masks")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and f"ground-truth mask {bad}" in result.stderr, result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_a_failed_build_leaves_no_artifact_or_temp_folder(inputs, tmp_path):
    """optimize --json on a NaN checkpoint: exit 1, nothing on stdout, no file left in the store."""
    result = CliRunner().invoke(app, ["optimize", str(inputs["nan"]), "--backend", "torch", "--json",
                                      "--out", str(tmp_path / "store")])  # fmt: skip
    assert result.exit_code == 1 and result.stdout == ""
    left = (
        [p for p in (tmp_path / "store").rglob("*") if p.is_file()] if (tmp_path / "store").exists() else []
    )
    assert left == [], left
