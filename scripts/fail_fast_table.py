"""The closing table of issue #23 ("fail fast, round 2"): each case run as a user types it, in a fresh
process, with its exit code, its one line and the seconds until it ended.

    .venv/bin/python scripts/fail_fast_table.py              # ~45 cases, a few minutes on 2 cores
    .venv/bin/python scripts/fail_fast_table.py --compiled   # also the torch-compile cases (+ a compile)

Inputs (a tiny checkpoint, a small dataset, artifacts, broken copies of them) are made in a temporary
folder first. The table is Markdown; the last line counts tracebacks, hangs (a case past --timeout) and
exit codes other than expected. Case 'item 2' (a dead tracking server) belongs to the MLflow code and
is not run here.
"""

from __future__ import annotations

import argparse
import builtins
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEGOPT = [sys.executable, "-c", "from segopt_cli.main import main; main()"]


class _Code:
    """A pickle that would call eval if loaded without weights_only."""

    def __reduce__(self):
        return (builtins.eval, ("1 + 1",))


def make_inputs(root: Path, compiled: bool) -> dict[str, str]:
    """Every file the cases name, made with segopt's own API (tiny models, nothing downloaded)."""
    import pickle

    import numpy as np
    import torch
    from PIL import Image

    from segopt_core.backends import ArtifactStore, VariantOptions
    from segopt_core.backends.integrity import file_record
    from segopt_core.checkpoints import init_zoo, write_checkpoint
    from segopt_core.data import synth_dataset
    from segopt_core.data.video_synth import synth_video
    from segopt_core.models import LogitsModel, build_hf_model
    from segopt_core.variants import tiny_cell

    spec, city = tiny_cell("ade20k", 64), tiny_cell("cityscapes", 64)
    model, city_model = (LogitsModel(build_hf_model(s, seed=0)).eval() for s in (spec, city))
    ckpt = write_checkpoint(model, spec, root / "zoo" / "tiny.safetensors", "safetensors")
    (root / "empty").mkdir()
    store = ArtifactStore(root / "work" / "artifacts")
    ort = store.get_or_build(model, VariantOptions("onnxruntime", "fp32"), spec=spec).path
    ort19 = ArtifactStore(root / "other").get_or_build(
        city_model, VariantOptions("onnxruntime", "fp32"), spec=city
    )
    paths = {"ckpt": ckpt, "zoo": root / "zoo", "work": root / "work", "ort": ort, "empty": root / "empty"}

    def broken(name: str, change) -> None:
        folder = root / "broken" / name
        shutil.copytree(ort, folder)
        meta = json.loads((folder / "metadata.json").read_text())
        change(folder, meta)
        (folder / "metadata.json").write_text(json.dumps(meta))
        paths[name] = folder

    outside = Path("/etc/passwd")
    broken("dotdot", lambda f, m: m["files"].update({"../../../../../../etc/passwd": file_record(outside)}))
    broken("absolute", lambda f, m: m["files"].update({str(outside): file_record(outside)}))
    broken("unlisted", lambda f, m: m["files"].pop("model.onnx"))

    def symlink(folder: Path, meta: dict) -> None:
        (folder / "model.onnx").rename(root / "moved.onnx")
        os.symlink(root / "moved.onnx", folder / "model.onnx")

    def classes(folder: Path, meta: dict) -> None:
        shutil.copy(ort19.path / "model.onnx", folder / "model.onnx")
        meta["files"]["model.onnx"] = file_record(folder / "model.onnx")

    def failing(folder: Path, meta: dict) -> None:
        data = (folder / "model.onnx").read_bytes()
        (folder / "model.onnx").write_bytes(data[:-16] + b"\0" * 16)  # size kept: only the sha256 tells

    broken("symlink", symlink)
    broken("classes", classes)
    broken("failing", failing)
    data = synth_dataset(root / "data", "ade20k", n_train=2, n_val=2, size=(64, 64), seed=0)
    nomask = root / "nomask"
    shutil.copytree(data, nomask)
    next(nomask.glob("**/annotations/validation/*.png")).unlink()
    clip = synth_video(root / "clip.mp4", 6, (64, 64), 12.0, 0)
    init_zoo(root / "zoo2", ["b0-512-ade20k"], "safetensors", tiny=True)
    Image.new("L", (32, 32)).save(sorted(clip.masks_dir.glob("*.png"))[3])  # a bad mask, 4 frames in
    big = root / "big-frames"
    big.mkdir()
    for i in range(2):
        Image.new("RGB", (7680, 4320)).save(big / f"{i:03d}.png")  # side by side: 15360x4320
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Code()}, root / "evil.pth")
    (root / "raw.pth").write_bytes(pickle.dumps({"w": [0.0]}))
    (root / "evil-run" / "state").mkdir(parents=True)
    torch.save({"version": 1, "x": _Code()}, root / "evil-run" / "state" / "latest.pt")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "x.png")
    (root / "a-folder.png").mkdir()
    paths |= {"data": data, "nomask": nomask, "clip": clip.path, "masks": clip.masks_dir, "big": big,
              "zoo2": root / "zoo2"}  # fmt: skip
    if compiled:
        compiled_art = store.get_or_build(model, VariantOptions("torch-compile", "fp32"), spec=spec).path
        paths |= {"compiled": compiled_art, "ro": read_only_copy(compiled_art, root / "read-only")}
    return {k: str(v) for k, v in paths.items()} | {"tmp": str(root), "long": "x" * 300}


def read_only_copy(folder: Path, mount: Path) -> Path:
    """A copy of `folder` that cannot be written: on a read-only tmpfs as root (root writes through file
    modes), else with the write bits removed."""
    mount.mkdir()
    copy = mount / folder.name
    if os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mount)]).returncode == 0:
        shutil.copytree(folder, copy)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        MOUNTS.append(mount)
        return copy
    shutil.copytree(folder, copy)
    for path in (copy, *copy.rglob("*")):
        path.chmod(0o555 if path.is_dir() else 0o444)
    return copy


MOUNTS: list[Path] = []  # unmounted when the table is done

# (issue item, expected exit code, command line with {placeholders})
CASES = [
    ("1", 2, "optimize-all {zoo} --min-miou-ratio 5.0 --work-dir {tmp}/w"),
    ("1", 2, "optimize-all {zoo} --min-miou-ratio 0 --work-dir {tmp}/w"),
    ("1", 2, "optimize-all {zoo} --limit 0 --work-dir {tmp}/w"),
    ("1", 2, "optimize-all {zoo} --iters 0 --work-dir {tmp}/w"),
    ("1", 2, "optimize-all {zoo} --warmup -1 --work-dir {tmp}/w"),
    ("1", 2, "nightly-benchmark --threshold -1 --work-dir {work}"),
    ("1", 2, "nightly-benchmark --window 0 --work-dir {work}"),
    ("1", 2, "optimize-all {tmp}/missing.safetensors --work-dir {tmp}/w"),
    ("1", 2, "optimize-all {empty} --work-dir {tmp}/w"),
    ("1", 2, "optimize-all {zoo} --work-dir {tmp}/{long}/{long}/{long}/{long}/{long}/{long}/{long}/{long}"),
    ("1", 2, "nightly-benchmark --work-dir {tmp}/wokr"),
    ("1", 2, "optimize-all {zoo} --data {nomask} --work-dir {tmp}/w"),
    ("1", 2, "optimize-all {zoo} --batch-sizes 0 --work-dir {tmp}/w"),
    ("1", 2, "optimize-all {zoo} --task-runner ray --work-dir {tmp}/w"),
    ("1", 2, "demo --work-dir {tmp}/demo --train-iters 5"),
    ("3", 2, "predict --artifact {dotdot} {tmp}/x.png --out {tmp}/masks"),
    ("3", 2, "predict --artifact {absolute} {tmp}/x.png --out {tmp}/masks"),
    ("3", 2, "predict --artifact {symlink} {tmp}/x.png --out {tmp}/masks"),
    ("3", 2, "predict --artifact {unlisted} {tmp}/x.png --out {tmp}/masks"),
    ("3", 2, "predict --artifact {classes} {tmp}/x.png --out {tmp}/masks"),
    ("4", 1, "benchmark --artifact {failing} --batch-sizes 1 --iters 1 --warmup 0 --no-lock"),
    ("4", 2, "train --data {data} --tiny --device cuda --out {tmp}/t"),
    ("4", 2, "train --data {data} --tiny --resume --out {tmp}/t"),
    ("5", 2, "evaluate --checkpoint {tmp}/evil.pth --data {data}"),
    ("5", 2, "train --data {data} --tiny --resume --out {tmp}/evil-run"),
    ("5", 2, "evaluate --checkpoint {tmp}/raw.pth --data {data}"),
    ("5", 2, "predict --artifact {ort} {tmp}/missing.png"),
    ("5", 2, "predict --artifact {ort} {tmp}/a-folder.png"),
    ("5", 2, "video {clip} --checkpoint {ckpt} --out {tmp}/v/o.mp4 --device cuda"),
    ("5", 2, "video {big} --checkpoint {ckpt} --out {tmp}/big/o.mp4 --side-by-side --fps 1"),
    ("5", 2, "data synth --out {tmp}/huge --size 100000x100000"),
    ("5", 2, "data synth --out {tmp}/{long}"),
    ("5", 2, "benchmark --artifact {tmp}"),
    ("6", 2, "video {clip} --checkpoint {ckpt} --out {tmp}/gt/o.mp4 --gt-masks {masks}"),
    ("6", 2, "zoo init {zoo2} --tiny --cells b0-512-ade20k --format safetensors"),
    ("6", 2, "data synth --out {data}"),
]
COMPILED_CASES = [
    ("3", 2, "video {clip} --artifact {ro} --input-size 70x50 --out {tmp}/ro/o.mp4"),
    ("3", 1, "benchmark --artifact {ro} --input-size 70x50 --batch-sizes 1 --iters 1 --warmup 0 --no-lock"),
    (
        "3",
        0,
        "benchmark --artifact {compiled} --input-size 70x50 --batch-sizes 1 --iters 1 --warmup 0 --no-lock",
    ),
]


def run_case(line: str, values: dict[str, str], env: dict[str, str], timeout_s: float) -> dict:
    """Run one command line; its exit code, its error line (or last stderr line), seconds, traceback."""
    args = [part.format(**values) for part in line.split()]
    start = time.perf_counter()
    try:
        done = subprocess.run(SEGOPT + args, cwd=values["tmp"], env=env, capture_output=True, text=True,
                              timeout=timeout_s)  # fmt: skip
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = "hang", exc.stdout or "", exc.stderr or ""
        out, err = (x.decode() if isinstance(x, bytes) else x for x in (out, err))
    seconds = time.perf_counter() - start
    lines = [row.strip() for row in err.splitlines() if row.strip()]
    errors = [row for row in lines if row.startswith("error:")]
    shown = errors[0] if errors else (lines[-1] if lines else "")
    return {"code": code, "line": shown, "errors": len(errors), "seconds": seconds,
            "traceback": "Traceback" in out + err}  # fmt: skip


def shorten(text: str, values: dict[str, str], width: int) -> str:
    """Paths made relative to the temporary folder, long names cut, `|` escaped, at most `width` chars."""
    text = text.replace(values["tmp"] + "/", "").replace(values["long"], "x…x").replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def main() -> int:
    """Print the table; exit 1 when a case printed a traceback, hung, or ended with another code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compiled", action="store_true", help="also the torch-compile cases")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds before a case counts as a hang")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="segopt-fail-fast-") as tmp:
        try:
            return _table(Path(tmp), args)
        finally:
            for mount in MOUNTS:
                subprocess.run(["umount", "-l", str(mount)], check=False)


def _table(root: Path, args: argparse.Namespace) -> int:
    """Make the inputs, run every case, print the table; 1 when anything was off."""
    values = make_inputs(root, args.compiled)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_HOME": str(root / "prefect"),
           "SEGOPT_WORK_DIR": str(root / "work"), "SEGOPT_LOCK_DIR": str(root / "locks"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "COLUMNS": "200"}  # fmt: skip
    env.pop("PREFECT_API_URL", None)
    print("| # | item | command | exit (expected) | the one line | s |")
    print("|---|---|---|---|---|---|")
    bad = {"tracebacks": 0, "hangs": 0, "other exit codes": 0, "not one error line": 0}
    for number, (item, expected, line) in enumerate(CASES + (COMPILED_CASES if args.compiled else []), 1):
        result = run_case(line, values, env, args.timeout)
        bad["tracebacks"] += result["traceback"]
        bad["hangs"] += result["code"] == "hang"
        bad["other exit codes"] += result["code"] != expected
        bad["not one error line"] += expected != 0 and result["errors"] != 1
        command = shorten("segopt " + line.format(**values), values, 70)
        print(f"| {number} | {item} | `{command}` | {result['code']} ({expected}) | "
              f"{shorten(result['line'], values, 150)} | {result['seconds']:.1f} |", flush=True)  # fmt: skip
    print("\n" + ", ".join(f"{name}: {count}" for name, count in bad.items()))
    print("(seconds are wall time of a fresh process, busy or not as the machine was)")
    return 1 if any(bad.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
