#!/usr/bin/env python
"""segopt's GPU table: torch eager fp32/fp16/bf16, compiled CUDA packages, ORT/TensorRT where installed.

B0 and B2 at 512x512 and B0 at 1024x1024 (the Cityscapes cell), batch 1, 8 and 32, random-init full-size
models (speed does not depend on the weights' values).  Every variant is built by the artifact store, which
verifies it against the fp32 model; then, per cell and batch size, all variants are timed in the same
interleaved rounds as torch fp32 eager (the baseline), device tensors in and out (what the GPU does, not the
PCIe copies; variants without a device-tensor path are timed host to host and marked so).  Reported: p50 /
p90 latency, images/s, speedup over fp32 from the same rounds, argmax agreement with fp32 on an image-like
batch, and the GPU memory one call allocates.  The section is merged into RESULTS.md under the GPU's name.

    python benchmarks/gpu_headline.py --build-only --jobs 8          # compile every artifact in parallel
    python benchmarks/gpu_headline.py --results benchmarks/RESULTS.md  # time them (reuses the artifacts)
    python benchmarks/gpu_headline.py --plan                           # what would run (any machine)
    python benchmarks/gpu_headline.py --dry-run                        # no GPU: stops at each first CUDA call
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout: use this segopt, not another installed one
sys.path.insert(0, str(REPO / "benchmarks"))  # headline.py: RESULTS.md sections (merge_results, cpu_kind)

DEFAULT_CELLS = ("b0-512-ade20k", "b2-512-ade20k", "b0-1024-cityscapes")
DEFAULT_BATCH_SIZES = (1, 8, 32)
BASELINE = "torch-fp32-cuda"
GRAPHS = " + CUDA graphs"
MANIFEST = "gpu-artifacts.json"


@dataclass(frozen=True)
class Planned:
    """One variant of the table; `cuda_graphs` replays the same artifact's package as CUDA graphs."""

    backend: str
    precision: str
    fold: bool = True
    cuda_graphs: bool = False

    def options(self):
        """The VariantOptions built for it (always on CUDA)."""
        from segopt_core.backends import VariantOptions

        return VariantOptions(self.backend, self.precision, fold_decode_head=self.fold, device="cuda")

    @property
    def label(self) -> str:
        """The row's variant name: the slug, plus the CUDA-graphs mark."""
        return self.options().slug + (GRAPHS if self.cuda_graphs else "")


PLAN = (
    Planned("torch", "fp32", fold=False),  # the baseline: the stock model as users run it
    Planned("torch", "fp16"),
    Planned("torch", "bf16"),
    Planned("torch-compile", "fp16"),
    Planned("torch-compile", "bf16"),
    Planned("torch-compile", "fp16", cuda_graphs=True),
    Planned("torch-compile", "bf16", cuda_graphs=True),
    Planned("onnxruntime", "fp16"),  # needs onnxruntime-gpu (CUDA provider)
    Planned("tensorrt", "fp16"),  # needs tensorrt
    Planned("tensorrt", "int8-static"),
)


@dataclass
class Built:
    """What the build phase left for one cell and variant: an artifact folder, or why there is none."""

    cell: str
    slug: str
    status: str
    artifact: str = ""
    reason: str = ""
    build_s: float | None = None


@dataclass
class Row:
    """One variant at one batch size on one cell (latencies in ms), or why it has no figures."""

    cell: str
    variant: str
    batch_size: int
    status: str = "ok"
    reason: str = ""
    io: str = "device"
    p50_ms: float | None = None
    p90_ms: float | None = None
    images_per_s: float | None = None
    speedup: float | None = None
    agreement: float | None = None
    gpu_mib: float | None = None
    build_s: float | None = None


def log(message: str) -> None:
    """A timestamped progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def selected_plan(patterns: tuple[str, ...]) -> list[Planned]:
    """The baseline and every planned variant whose label contains one of `patterns` (all without any)."""
    return [p for p in PLAN if p.label == BASELINE or not patterns or any(s in p.label for s in patterns)]


def plan_lines(cells: tuple[str, ...], batch_sizes: tuple[int, ...], plan: list[Planned]) -> list[str]:
    """Human-readable plan: what would be built and timed."""
    lines = [f"cells: {', '.join(cells)}; batch sizes: {', '.join(map(str, batch_sizes))}"]
    lines += [f"{cell}  {p.label}" for cell in cells for p in plan]
    return lines


def reference_batch(spec, batch_size: int):
    """Deterministic image-like (N,3,H,W) float32 input at the crop size."""
    from segopt_core.backends.verify import verification_inputs

    return verification_inputs((batch_size, 3, *spec.crop_size), seed=11)


# --- build phase ---------------------------------------------------------------------------------------


def build_one(cell: str, planned: Planned, root: str) -> Built:
    """Build (or reuse) one artifact; a variant this machine cannot run is a skipped result, not an error."""
    from segopt_core.backends import ArtifactStore, BackendUnavailable
    from segopt_core.backends.registry import get_backend
    from segopt_core.benchmark import describe_error
    from segopt_core.models import build_model
    from segopt_core.variants import get_cell

    options, spec = planned.options(), get_cell(cell)
    unavailable = get_backend(options.backend).available(options)  # before building a full-size model
    if unavailable:
        return Built(cell, options.slug, "skipped", reason=unavailable)
    calib = reference_batch(spec, 8) if options.precision == "int8-static" else None
    start = time.perf_counter()
    try:
        artifact = ArtifactStore(root).get_or_build(
            build_model(spec, seed=0), options, calib_images=calib, spec=spec
        )
    except BackendUnavailable as exc:
        return Built(cell, options.slug, "skipped", reason=str(exc))
    except Exception as exc:  # a variant that cannot be built is a row of the table, the rest goes on
        return Built(cell, options.slug, "failed", reason=describe_error(exc))
    seconds = artifact.metadata.get("build_seconds") if artifact.reused else time.perf_counter() - start
    return Built(cell, options.slug, "ok", str(artifact.path), build_s=round(float(seconds or 0), 1))


def _worker_init(threads: int) -> None:
    """(Build worker) share the CPU with the other workers: torch threads and inductor compile workers."""
    import torch
    import torch._inductor.config as inductor

    torch.set_num_threads(threads)
    inductor.compile_threads = threads


def build_all(pairs: list[tuple[str, Planned]], root: Path, jobs: int, on_built) -> None:
    """Build every distinct (cell, variant) of `pairs`, `jobs` at a time in separate processes.

    `on_built(Built)` sees each result as soon as it is there.
    """
    todo = {(cell, p.options()): p for cell, p in pairs}  # a CUDA-graphs row shares its variant's artifact
    # the longest compiles first, so the last ones to finish are short
    order = sorted(todo.items(), key=lambda kv: (kv[0][1].backend != "torch-compile", "b2" not in kv[0][0]))
    if jobs <= 1:
        for (cell, _), p in order:
            on_built(build_one(cell, p, str(root)))
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in forked children
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_init, initargs=(threads,)) as pool:
        futures = [pool.submit(build_one, cell, p, str(root)) for (cell, _), p in order]
        for future in as_completed(futures):
            on_built(future.result())


def write_manifest(built: list[Built], path: Path) -> None:
    """The build phase's results as JSON (the artifacts gpu_check.sh hands to `segopt video`)."""
    from segopt_core.atomic import write_json_atomic

    write_json_atomic(path, [asdict(b) for b in built])


def read_manifest(path: Path) -> list[Built]:
    """Inverse of write_manifest."""
    return [Built(**entry) for entry in json.loads(path.read_text())]


def build_missing(args, plan: list[Planned]) -> dict[tuple[str, str], Built]:
    """The manifest's builds (work_dir/gpu-artifacts.json) by (cell, slug), after building what it lacks.

    Entries that are not ok are tried again (a rerun on the same machine reuses only what was built); the
    manifest is rewritten after each build, so a build phase stopped at its time limit keeps what it did.
    With --no-build nothing is built and a missing entry says so.
    """
    manifest = args.work_dir / MANIFEST
    built = {(b.cell, b.slug): b for b in (read_manifest(manifest) if manifest.is_file() else [])}
    keys = [(c, p.options().slug, p) for c in args.cells for p in plan]
    if args.no_build:
        why = "not built: the build phase did not get to it (time limit) or stopped; see gpu-build.log"
        return {
            (c, slug): built.get((c, slug)) or Built(c, slug, "skipped", reason=why) for c, slug, _ in keys
        }
    missing = [(c, p) for c, slug, p in keys if (c, slug) not in built or built[c, slug].status != "ok"]

    def record(result: Built) -> None:
        built[result.cell, result.slug] = result
        write_manifest(list(built.values()), manifest)
        log(f"{result.cell} {result.slug}: {result.status} {result.artifact or result.reason}")

    build_all(missing, args.work_dir / "artifacts", args.jobs, record)
    return built


# --- timing phase --------------------------------------------------------------------------------------


def load_planned(planned: Planned, built: Built):
    """The predictor of a built variant (its package replayed as CUDA graphs where planned so)."""
    from segopt_core.backends import VariantOptions, load_predictor

    if not planned.cuda_graphs:
        return load_predictor(built.artifact)
    from segopt_core.backends.artifacts import check_artifact
    from segopt_core.backends.compile import PackagedPredictor

    folder = Path(built.artifact)
    meta = check_artifact(folder)
    return PackagedPredictor(folder, meta, VariantOptions.from_dict(meta["options"]), cuda_graphs=True)


def device_call(predictor, x):
    """(zero-argument call on the CUDA batch `x`, 'device' or 'host': whether it includes PCIe copies)."""
    import torch

    if hasattr(predictor, "run_tensor"):  # compiled packages
        return (lambda: predictor.run_tensor(x)), "device"
    dtype = getattr(predictor, "autocast_dtype", None)
    if hasattr(predictor, "model"):  # torch eager: the predictor's own autocast, without the copies

        def call():
            autocast = torch.autocast("cuda", dtype or torch.float32, enabled=dtype is not None)
            with torch.inference_mode(), autocast:
                return predictor.model(x).float()

        return call, "device"
    host = x.cpu().numpy()
    return (lambda: torch.as_tensor(predictor(host))), "host"


def graph_failure(predictor) -> str:
    """Why a CUDA-graphs predictor ran its package without graphs ('' when it did not)."""
    failed = [r.failed for r in getattr(predictor, "runners", {}).values() if getattr(r, "failed", "")]
    return f"CUDA graph capture failed, the package ran without graphs: {failed[0]}" if failed else ""


def first_call_mib(call) -> float:
    """GPU memory (MiB) one call allocates through PyTorch above what was allocated before it."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    out = call()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del out
    return (peak - before) / 2**20


def agreements(predictors: dict, batch) -> dict[str, float]:
    """Argmax agreement of each predictor with the baseline's logits on the same CUDA batch."""
    logits = {label: device_call(p, batch)[0]() for label, p in predictors.items()}
    reference = logits[BASELINE].argmax(1).cpu()
    return {label: float((out.argmax(1).cpu() == reference).float().mean()) for label, out in logits.items()}


def load_cell(cell: str, plan: list[Planned], built: dict, sizes: tuple[int, ...]) -> tuple[dict, list[Row]]:
    """(label -> predictor, rows of the variants without one) for one cell."""
    from segopt_core.backends import BackendUnavailable
    from segopt_core.benchmark import describe_error

    predictors, rows = {}, []
    for p in plan:
        b = built.get((cell, p.options().slug)) or Built(cell, p.label, "skipped", reason="not built")
        status, reason = b.status, b.reason
        if status == "ok":
            try:
                predictors[p.label] = load_planned(p, b)
                continue
            except BackendUnavailable as exc:
                status, reason = "skipped", str(exc)
            except Exception as exc:  # a broken artifact is a row, the table goes on
                status, reason = "failed", describe_error(exc)
        rows += [Row(cell, p.label, size, status, reason) for size in sizes]
    return predictors, rows


def time_cell(cell: str, plan: list[Planned], built: dict, args, deadline: float) -> list[Row]:
    """Every built variant of one cell at every batch size, in interleaved rounds with the baseline."""
    from segopt_core.variants import get_cell

    predictors, rows = load_cell(cell, plan, built, args.batch_sizes)
    if BASELINE not in predictors:
        why = "no torch fp32 baseline to compare with"
        return rows + [Row(cell, label, b, "skipped", why) for label in predictors for b in args.batch_sizes]
    import torch

    spec = get_cell(cell)
    agree = agreements(predictors, torch.from_numpy(reference_batch(spec, 4)).cuda())
    build_s = {p.label: built[(cell, p.options().slug)].build_s for p in plan if p.label in predictors}
    for size in args.batch_sizes:
        if time.monotonic() > deadline:
            reason = f"time budget of {args.budget_s:.0f} s used up"
            rows += [Row(cell, label, size, "skipped", reason) for label in predictors]
            continue
        log(f"{cell}: batch {size}, {len(predictors)} variants in interleaved rounds")
        rows += time_batch(cell, spec, predictors, size, args, agree, build_s)
    return rows


def time_batch(cell, spec, predictors: dict, size: int, args, agree: dict, build_s: dict) -> list[Row]:
    """One batch size: memory of each variant's first call, then all of them in the same rounds."""
    import numpy as np
    import torch

    from segopt_core.benchmark import describe_error, interleaved_ab, latency_stats

    x = torch.randn(size, 3, *spec.crop_size, generator=torch.Generator().manual_seed(0)).cuda()
    calls, io, mib, rows = {}, {}, {}, []
    for label, predictor in predictors.items():
        call, io[label] = device_call(predictor, x)
        try:
            mib[label] = first_call_mib(call) if io[label] == "device" else None
        except Exception as exc:  # out of memory at this batch size: this variant's row says so
            torch.cuda.empty_cache()
            rows.append(Row(cell, label, size, "failed", describe_error(exc), io[label]))
            continue
        calls[label] = call
    try:
        samples = interleaved_ab(
            calls, args.rounds, args.iters_per_round, args.warmup, sync=torch.cuda.synchronize
        )
    except Exception as exc:
        return rows + [Row(cell, label, size, "failed", describe_error(exc), io[label]) for label in calls]
    base = float(np.median(samples[BASELINE])) if BASELINE in samples else None
    for label, values in samples.items():
        if graph_failure(predictors[label]):  # ran ungraphed: its figures are not the graphs' figures
            rows.append(Row(cell, label, size, "failed", graph_failure(predictors[label]), io[label]))
            continue
        stats = latency_stats(values, size)
        p50 = stats["latency_ms_median"]
        rows.append(
            Row(cell, label, size, io=io[label], p50_ms=p50, p90_ms=stats["latency_ms_p90"],
                images_per_s=stats["throughput_ips"], speedup=base * 1e3 / p50 if base else None,
                agreement=agree.get(label), gpu_mib=mib.get(label), build_s=build_s.get(label))
        )  # fmt: skip
    return rows


# --- report --------------------------------------------------------------------------------------------


def section_key(fp: dict) -> tuple[str, str]:
    """(key, title) of the RESULTS.md section: the GPU's own (as headline.py names it), or the dry run's."""
    if not fp.get("gpu_name"):
        return "gpu-dry-run", f"GPU dry run on {fp.get('cpu_model') or 'a CPU'} (no GPU: nothing measured)"
    from headline import cpu_kind

    return cpu_kind(fp)


def render(rows: list[Row], fp: dict, env: dict, command: str, video: dict | None, notes: list[str]) -> str:
    """One Markdown section: targets, one table per cell, video, machine, method and command."""
    key, title = section_key(fp)
    lines = [f"<!-- cpu-kind: {key} -->", f"## {title}", ""]
    lines += [
        f"Measured {fp['date']} on `{fp.get('gpu_name') or 'no GPU'}` "
        f"(driver {fp.get('gpu_driver') or '—'}, CUDA {fp.get('cuda_version') or '—'}, "
        f"torch {fp.get('torch_version')}, {env.get('gpu_arch', '—')}), host `{fp.get('cpu_model')}` "
        f"({fp.get('cpu_affinity_cores')} cores), segopt `{fp.get('segopt_commit')}`, "
        f"onnxruntime {fp.get('onnxruntime_version') or '—'} (providers: {env.get('ort_providers', '—')}), "
        f"TensorRT {fp.get('tensorrt_version') or 'not installed'}.",
        "",
        *[f"> {note}" for note in notes],
        *([""] if notes else []),
        "Latency per call of the whole batch (ms), CUDA tensors in and out unless the I/O column says "
        "host; images/s = batch / p50; × fp32 = torch fp32 eager p50 / variant p50 from the same "
        "interleaved rounds; agreement = argmax agreement with torch fp32 eager on CUDA (4 image-like "
        "inputs at the crop size); GPU MiB = memory one call allocates through PyTorch above what was "
        "allocated before it (activations, outputs, workspaces, a CUDA graph's pool; not the weights); "
        "build s = build + verification.",
        "",
    ]
    lines += targets_table(rows, video)
    for cell in dict.fromkeys(r.cell for r in rows):
        lines += cell_table(cell, [r for r in rows if r.cell == cell])
    lines += video_table(video)
    lines += ["### Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in {**env, **fp}.items()]
    lines += ["", "### Reproduce", "", "```bash", command, "```", f"<!-- /cpu-kind: {key} -->", ""]
    return "\n".join(lines)


def _best(rows: list[Row], cell: str, size: int, key) -> Row | None:
    """The ok row of `cell` at `size` with the smallest key (None when none ran)."""
    found = [r for r in rows if r.status == "ok" and r.cell == cell and r.batch_size == size]
    return min(found, key=key) if found else None


def targets_table(rows: list[Row], video: dict | None) -> list[str]:
    """Issue #26's targets against the best measured variant."""
    lines = ["### Targets", "", "| target | best measured | variant | met |", "|---|---:|---|---|"]

    def add(target: str, row: Row | None, value: str, met: bool) -> None:
        lines.append(f"| {target} | {value if row else '—'} | {f'`{row.variant}`' if row else '—'} | "
                     f"{('yes' if met else 'no') if row else 'not measured'} |")  # fmt: skip

    b0 = _best(rows, "b0-512-ade20k", 1, lambda r: r.p50_ms)
    add("B0@512 batch 1 ≤ 1 ms", b0, f"{b0.p50_ms:.3f} ms" if b0 else "", bool(b0 and b0.p50_ms <= 1.0))
    b32 = _best(rows, "b0-512-ade20k", 32, lambda r: -r.images_per_s)
    add("B0@512 batch 32 ≥ 10 000 images/s", b32, f"{b32.images_per_s:.0f}" if b32 else "",
        bool(b32 and b32.images_per_s >= 10_000))  # fmt: skip
    b2 = _best(rows, "b2-512-ade20k", 1, lambda r: r.p50_ms)
    add("B2@512 batch 1 ≤ 3 ms", b2, f"{b2.p50_ms:.3f} ms" if b2 else "", bool(b2 and b2.p50_ms <= 3.0))
    half = [r for r in rows if r.status == "ok" and r.agreement is not None and "16" in r.variant]
    worst = min(half, key=lambda r: r.agreement) if half else None
    add("fp16/bf16 argmax agreement ≥ 0.99 (worst)", worst, f"{worst.agreement:.4f}" if worst else "",
        bool(worst and worst.agreement >= 0.99))  # fmt: skip
    fps = ((video or {}).get("performance") or {}).get("fps_end_to_end")
    met = ("yes" if fps >= 60 else "no") if fps is not None else "not measured"
    variant = f"`{video['variant']}`" if video and video.get("variant") else "—"
    lines.append(f"| video 1080p ≥ 60 FPS end to end | {'—' if fps is None else fps} | {variant} | {met} |")
    return lines + [""]


def cell_table(cell: str, rows: list[Row]) -> list[str]:
    """Markdown table of one cell; rows without figures listed under it with their reason."""
    lines = [
        f"### {cell}",
        "",
        "| variant | I/O | batch | p50 ms | p90 ms | images/s | × fp32 | agreement | GPU MiB | build s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    problems: dict[tuple[str, str, str], list[int]] = {}
    for r in rows:
        if r.status != "ok":
            problems.setdefault((r.variant, r.status, r.reason), []).append(r.batch_size)
            continue
        lines.append(
            f"| `{r.variant}` | {r.io} | {r.batch_size} | {r.p50_ms:.3f} | {r.p90_ms:.3f} "
            f"| {r.images_per_s:.0f} | {_fmt(r.speedup, '.2f', '×')} | {_fmt(r.agreement, '.4f')} "
            f"| {_fmt(r.gpu_mib, '.0f')} | {_fmt(r.build_s, '.0f')} |"
        )
    notes = [f"- `{v}` (batch {', '.join(map(str, b))}): {s}: {why}" for (v, s, why), b in problems.items()]
    return lines + ([""] + notes if notes else []) + [""]


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    """A number formatted, or '—'."""
    return "—" if value is None else f"{value:{spec}}{suffix}"


def video_table(video: dict | None) -> list[str]:
    """`segopt video`'s performance figures (every number of its summary's 'performance', flattened)."""
    if not video:
        return []
    figures = _flatten(video.get("performance") or {})
    lines = [
        "### Video (`segopt video`, 1080p)",
        "",
        f"Artifact `{video.get('variant', '?')}`, command: `{video.get('command', '?')}`.",
        "",
        "| figure | value |",
        "|---|---:|",
    ]
    return lines + [f"| {k} | {v} |" for k, v in figures.items()] + [""]


def _flatten(data: dict, prefix: str = "") -> dict:
    """Nested dict -> {'a.b': value} for the scalar leaves."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= _flatten(value, f"{name}.")
        elif isinstance(value, int | float | str) or value is None:
            flat[name] = value
    return flat


def environment() -> dict:
    """What the fingerprint lacks for a GPU: the GPU's architecture, ORT's providers, TF32 switches."""
    import torch

    env = {"gpu_arch": "—", "ort_providers": "not installed"}
    if torch.cuda.is_available():
        from segopt_core.backends.aoti import cuda_arch

        props = torch.cuda.get_device_properties(0)
        env |= {"gpu_arch": cuda_arch(), "gpu_memory_gib": round(props.total_memory / 2**30, 1)}
        env["cudnn_version"] = torch.backends.cudnn.version()
        env["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32  # PyTorch's defaults: off
        env["tf32_cudnn"] = torch.backends.cudnn.allow_tf32  # and on
    try:
        import onnxruntime

        env["ort_providers"] = ", ".join(onnxruntime.get_available_providers())
    except ImportError:
        pass
    return env


# --- main ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default=",".join(DEFAULT_CELLS), help="Comma-separated matrix cells.")
    parser.add_argument("--batch-sizes", default=",".join(map(str, DEFAULT_BATCH_SIZES)))
    parser.add_argument("--variants", default="", help="Only variants whose name contains one of these.")
    parser.add_argument("--rounds", type=int, default=5, help="Interleaved rounds per batch size.")
    parser.add_argument("--iters-per-round", type=int, default=10, help="Calls per variant per round.")
    parser.add_argument("--warmup", type=int, default=5, help="Warm-up calls per variant and batch size.")
    parser.add_argument("--work-dir", type=Path, default=Path("gpu-headline"), help="Artifact store root.")
    parser.add_argument("--jobs", type=int, default=1, help="Build this many artifacts at once (processes).")
    parser.add_argument("--build-only", action="store_true", help="Build, verify, write the manifest; stop.")
    parser.add_argument("--no-build", action="store_true", help="Time only what the manifest says is built.")
    parser.add_argument("--out", type=Path, default=None, help="Write the Markdown section here.")
    parser.add_argument("--results", type=Path, default=None, help="Merge the section into this RESULTS.md.")
    parser.add_argument("--rows-json", type=Path, default=None, help="Write every row as JSON here.")
    parser.add_argument("--video-summary", type=Path, default=None, help="`segopt video` summary to include.")
    parser.add_argument("--note", action="append", default=[], help="A line quoted under the heading.")
    parser.add_argument("--budget-s", type=float, default=float("inf"), help="Skip batch sizes after this.")
    parser.add_argument("--plan", action="store_true", help="Print the plan and exit (no CUDA needed).")
    parser.add_argument(
        "--dry-run", action="store_true", help="Without a GPU: every variant stops at its first CUDA call."
    )
    args = parser.parse_args(argv)
    args.cells = tuple(c.strip() for c in args.cells.split(",") if c.strip())
    args.batch_sizes = tuple(int(b) for b in args.batch_sizes.split(",") if b.strip())
    args.variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    return args


def main(argv: list[str] | None = None) -> int:
    """Build, or build and time, the GPU headline; exit 2 without CUDA unless --dry-run."""
    args = parse_args(argv)
    plan = selected_plan(args.variants)
    if args.plan:
        print("\n".join(plan_lines(args.cells, args.batch_sizes, plan)))
        return 0
    import torch

    if not torch.cuda.is_available() and not args.dry_run:
        print("error: no CUDA device (torch.cuda.is_available() is False); see --dry-run", file=sys.stderr)
        return 2
    args.work_dir.mkdir(parents=True, exist_ok=True)
    built = build_missing(args, plan)
    if args.build_only:
        return 0
    rows, fp = measure(args, plan, built)
    video = read_video_summary(args.video_summary)
    command = "python benchmarks/gpu_headline.py " + shlex.join(sys.argv[1:])
    text = render(rows, fp, environment(), command.strip(), video, args.note)
    print(text)
    write_outputs(args, text, rows)
    return 0


def measure(args, plan: list[Planned], built: dict) -> tuple[list[Row], dict]:
    """Every cell's rows, timed under segopt's CUDA device lock, and the machine fingerprint."""
    from segopt_core.benchmark import device_lock, machine_fingerprint

    deadline = time.monotonic() + args.budget_s
    with device_lock("cuda"):
        rows = [r for cell in args.cells for r in time_cell(cell, plan, built, args, deadline)]
    return rows, machine_fingerprint()


def read_video_summary(path: Path | None) -> dict | None:
    """The `segopt video` summary gpu_check.sh recorded (None when there is none)."""
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text())


def write_outputs(args, text: str, rows: list[Row]) -> None:
    """The section (--out), RESULTS.md with it merged in (--results) and the rows (--rows-json)."""
    from headline import merge_results

    from segopt_core.atomic import write_text_atomic

    if args.out:
        write_text_atomic(args.out, text)
    if args.results:
        existing = args.results.read_text() if args.results.is_file() else ""
        write_text_atomic(args.results, merge_results(existing, text))
    if args.rows_json:
        write_text_atomic(args.rows_json, json.dumps([asdict(r) for r in rows], indent=1))


if __name__ == "__main__":
    sys.exit(main())
