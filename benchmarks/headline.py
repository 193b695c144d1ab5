#!/usr/bin/env python
"""segopt's headline table: every backend available here vs torch fp32 eager, B0 and B2 at 512x512.

Random-init full-size models from the variant matrix (speed should not depend on the weights' values:
`benchmarks/product_vs_headline.py` checks that against a checkpoint's own weights),
interleaved A/B rounds (baseline and candidate alternate so drift hits both), medians and ratios, written
as Markdown with the machine fingerprint. See benchmarks/README.md for how to run it and read it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout: use this segopt, not another installed one
DEFAULT_CELLS = ("b0-512-ade20k", "b2-512-ade20k")
# Where each allocator's shared library lives on common Linux distributions (Debian/Ubuntu first).
ALLOCATOR_LIBRARIES = {
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4", "libtcmalloc_minimal.so", "libtcmalloc.so"),
    "jemalloc": ("libjemalloc.so.2", "libjemalloc.so"),
}
LIBRARY_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
)
_REEXEC_FLAG = "SEGOPT_HEADLINE_REEXEC"
PEER = "peer"  # OpenVINO's default, timed in the same rounds


@dataclass
class Settings:
    """Timing and scope of one headline run (quick: B0 only, few rounds)."""

    cells: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    rounds: int
    iters_per_round: int
    warmup: int
    variants: tuple[str, ...] = ()
    threads: int | None = None


@dataclass
class Comparison:
    """One candidate against the baseline at one batch size (latencies in ms), or why it did not run."""

    cell: str
    variant: str
    device: str
    batch_size: int
    status: str = "ok"
    reason: str = ""
    baseline_ms: list[float] = field(default_factory=list)
    candidate_ms: list[float] = field(default_factory=list)
    peer_ms: list[float] = field(default_factory=list)  # OpenVINO's default, in the same rounds

    def median(self, which: str) -> float:
        """Median latency (ms) of 'baseline', 'candidate' or 'peer'."""
        return float(np.median(getattr(self, f"{which}_ms")))

    def p90(self, which: str) -> float:
        """90th percentile latency (ms)."""
        return float(np.percentile(getattr(self, f"{which}_ms"), 90))


def log(message: str) -> None:
    """A timestamped progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- allocator ---------------------------------------------------------------------------------------------


def find_allocator(name: str) -> Path | None:
    """Path of the allocator's shared library, or None when it is not installed."""
    for folder in LIBRARY_DIRS:
        for lib in ALLOCATOR_LIBRARIES[name]:
            if (Path(folder) / lib).is_file():
                return Path(folder) / lib
    return None


def use_allocator(name: str) -> None:
    """Make this process run on allocator `name`: re-exec with LD_PRELOAD when needed (glibc: without it)."""
    from segopt_core.benchmark import detect_allocator

    if detect_allocator() == name:
        return
    if os.environ.get(_REEXEC_FLAG):
        sys.exit(
            f"error: re-executed with LD_PRELOAD={os.environ.get('LD_PRELOAD')} but {name} is not loaded"
        )
    env = dict(os.environ, **{_REEXEC_FLAG: "1"})
    if name == "glibc":
        env.pop("LD_PRELOAD", None)
    else:
        library = find_allocator(name)
        if library is None:
            sys.exit(
                f"error: {name} not found in {', '.join(LIBRARY_DIRS)}; install it "
                "(Debian/Ubuntu: apt-get install libtcmalloc-minimal4 or libjemalloc2), or use glibc"
            )
        env["LD_PRELOAD"] = str(library)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def eager_child(cell: str, batch_size: int, iters: int, warmup: int, threads: int | None) -> None:
    """(Child process) time torch fp32 eager on a cell and print the allocator and latencies as JSON."""
    import torch

    from segopt_core.benchmark import detect_allocator
    from segopt_core.benchmark.timing import time_call
    from segopt_core.models import build_model
    from segopt_core.predictor import TorchPredictor
    from segopt_core.variants import get_cell

    if threads:
        torch.set_num_threads(threads)
    spec = get_cell(cell)
    predictor = TorchPredictor(build_model(spec, seed=0))
    batch = _batch(spec.crop_size, batch_size)
    for _ in range(warmup):
        predictor(batch)
    samples = [time_call(lambda: predictor(batch), lambda: None) * 1e3 for _ in range(iters)]
    print(json.dumps({"allocator": detect_allocator(), "samples_ms": samples}))


def allocator_ab(settings: Settings, library: Path) -> list[dict]:
    """torch fp32 eager under glibc vs tcmalloc: child processes alternate in rounds; medians per cell."""
    results = []
    for cell in settings.cells:
        samples: dict[str, list[float]] = {"glibc": [], "tcmalloc": []}
        for r in range(settings.rounds):
            order = ("glibc", "tcmalloc") if r % 2 == 0 else ("tcmalloc", "glibc")
            for name in order:
                samples[name] += _run_child(cell, name, library, settings)
        results.append({"cell": cell, **{f"{k}_ms": float(np.median(v)) for k, v in samples.items()}})
    return results


def _run_child(cell: str, allocator: str, library: Path, settings: Settings) -> list[float]:
    """Latencies (ms) from one child process running on `allocator`."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if allocator != "glibc":
        env["LD_PRELOAD"] = str(library)
    command = [
        sys.executable,
        __file__,
        "--child-eager",
        cell,
        "--child-iters",
        str(settings.iters_per_round),
    ]
    command += ["--warmup", str(settings.warmup)] + (
        ["--threads", str(settings.threads)] if settings.threads else []
    )
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if result["allocator"] != allocator:
        raise RuntimeError(f"child ran on {result['allocator']}, expected {allocator} (LD_PRELOAD={library})")
    return result["samples_ms"]


# --- variants ----------------------------------------------------------------------------------------------


def _batch(hw: tuple[int, int], batch_size: int) -> np.ndarray:
    """A fixed random float32 batch (N,3,H,W)."""
    return np.random.default_rng(0).standard_normal((batch_size, 3, *hw), dtype=np.float32)


def candidate_options(settings: Settings) -> list:
    """Every default variant for this machine except torch fp32 eager itself (the baseline)."""
    import torch

    from segopt_core.backends import default_variants
    from segopt_core.backends.options import REFERENCE_VARIANT, pt2e_installed

    every = default_variants(cuda=torch.cuda.is_available(), pt2e=pt2e_installed())
    options = [o for o in every if o != REFERENCE_VARIANT]
    if settings.variants:
        options = [o for o in options if any(pattern in o.slug for pattern in settings.variants)]
    return options


def peer_options():
    """OpenVINO as its users get it: the stock (unfolded) model at OpenVINO's default precision for this CPU
    (bf16 where it is native, f32 elsewhere), LATENCY hint; None when openvino is not installed."""
    from segopt_core.backends import VariantOptions
    from segopt_core.backends.openvino import default_precision, openvino_installed

    if not openvino_installed():
        return None
    return VariantOptions("openvino", default_precision())


def build_peer(model, spec, store) -> tuple[str | None, str]:
    """(artifact folder, note) of the OpenVINO peer on one cell; (None, why) when it cannot run."""
    from segopt_core.benchmark import describe_error

    options = peer_options()
    if options is None:
        return None, "OpenVINO not installed (pip install 'segopt[openvino]')"
    log(f"{spec.name}: OpenVINO peer {options.slug}")
    try:
        return str(store.get_or_build(model, options, spec=spec).path), options.slug
    except Exception as exc:  # the peer is context: the table goes on without it
        return None, f"{options.slug} failed: {describe_error(exc)}"


def measuring_config(settings: Settings):
    """How the headline measures (a segopt_core.benchmark.MeasureConfig): no loop of its own; at every
    batch size, `rounds` same-round rounds of the baseline, the variant and the peer."""
    from segopt_core.benchmark import MeasureConfig, Rounds

    rounds = Rounds(settings.rounds, settings.iters_per_round, settings.warmup)
    return MeasureConfig(
        settings.batch_sizes, timing=None, rounds=rounds, pair_every_batch_size=True, threads=settings.threads
    )


def compare_cell(cell: str, settings: Settings, store, work_dir: Path) -> list[Comparison]:
    """Comparisons of every candidate with torch fp32 eager on one cell, at every batch size: built here,
    measured in segopt's measuring process (`measure_isolated`, as optimize-all and `segopt benchmark`)."""
    from segopt_core.benchmark import Candidate
    from segopt_core.models import build_model
    from segopt_core.pipeline.stages import synthetic_calibration
    from segopt_core.variants import get_cell

    spec = get_cell(cell)
    model = build_model(spec, seed=0)  # the measuring process builds the same one as the baseline
    calib = synthetic_calibration(work_dir, spec)
    peer, _ = build_peer(model, spec, store)
    peers = {PEER: peer} if peer else {}
    comparisons = []
    for options in candidate_options(settings):
        log(f"{cell}: {options.slug}")
        build = functools.partial(_build, store, model, options, calib, spec)
        candidate = Candidate(options.slug, build, options.precision, options.device)
        comparisons += comparisons_of(
            cell, options.device, measure_candidate(candidate, spec, settings, peers)
        )
    return comparisons


def measure_candidate(candidate, spec, settings: Settings, peers: dict[str, str] | None = None):
    """The headline's measurement of one variant (a Measurement): against the random-init baseline of the
    cell (seed 0) and the peers, in segopt's measuring process."""
    from segopt_core.benchmark.isolated import ReferenceSource, measure_isolated

    return measure_isolated(candidate, spec, measuring_config(settings), ReferenceSource(spec), peers)


def _build(store, model, options, calib, spec) -> Path:
    """The variant's artifact folder (built and verified by the artifact store, or reused)."""
    return store.get_or_build(model, options, calib_images=calib, spec=spec).path


def comparisons_of(cell: str, device: str, measured) -> list[Comparison]:
    """One Comparison per batch size from a Measurement: the same-round samples, or why there are none."""
    from segopt_core.benchmark.paired import REFERENCE, VARIANT

    found = []
    for row in measured.rows:
        status = {"cell": cell, "variant": row["variant"], "device": device, "batch_size": row["batch_size"]}
        rounds = measured.rounds_ms.get(row["batch_size"])
        if row["status"] != "ok" or not rounds:
            found.append(Comparison(**status, status=row["status"], reason=row["error"]))
            continue
        found.append(
            Comparison(
                **status,
                baseline_ms=rounds[REFERENCE],
                candidate_ms=rounds[VARIANT],
                peer_ms=rounds.get(PEER, []),
            )
        )
    return found


#
# --- report ------------------------------------------------------------------------------------------------


def cpu_kind(fp: dict) -> tuple[str, str]:
    """(key, title) of the hardware class a report belongs to: RESULTS.md keeps one section per kind."""
    cpu = f"{_cpu_generation()}{fp['cpu_model']}".strip()
    if fp["gpu_name"]:
        return "gpu-" + "".join(c if c.isalnum() else "-" for c in fp["gpu_name"].lower()), fp["gpu_name"]
    if fp["isa_amx"]:
        return "amx", f"AMX ({cpu})"
    if fp["isa_avx512_bf16"]:
        return "avx512-bf16", f"AVX-512 + BF16/VNNI ({cpu}, no AMX)"
    if fp["isa_avx512f"]:
        return "avx512", f"AVX-512 ({cpu}, no BF16, no AMX)"
    return "avx2", f"AVX2 ({cpu}, no AVX-512, VNNI or AMX)"


def _cpu_generation() -> str:
    """'Zen 5 ' etc. for AMD CPUs whose model name does not say it (from /proc/cpuinfo's family), else ''."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    families = [line.split(":")[1].strip() for line in info.splitlines() if line.startswith("cpu family")]
    family = families[0] if families else ""
    if "AuthenticAMD" not in info:
        return ""
    return {"23": "Zen/Zen 2 ", "25": "Zen 3/Zen 4 ", "26": "Zen 5 "}.get(family, "")


def render(
    comparisons: list[Comparison],
    allocators: list[dict] | None,
    settings: Settings,
    command: str,
    peer: str = "",
    notes: tuple[str, ...] = (),
) -> str:
    """One CPU kind's section: best per cell, results per cell, allocator A/B, fingerprint, method."""
    from segopt_core.benchmark import machine_fingerprint

    fp = machine_fingerprint()
    key, title = cpu_kind(fp)
    lines = [
        f"<!-- cpu-kind: {key} -->",
        f"## {title}",
        "",
        f"Measured {fp['date']} on `{fp['cpu_model']}` ({fp['cpu_affinity_cores']} usable cores, "
        f"torch threads {fp['torch_threads']}, allocator **{fp['allocator']}**"
        + (f", GPU {fp['gpu_name']}" if fp["gpu_name"] else ", no GPU")
        + f"), segopt `{fp['segopt_commit']}`"
        + (f", OpenVINO peer `{peer}` ({_openvino_versions()})" if peer else "")
        + ".",
        "",
        *[f"> {note}" for note in notes],
        *([""] if notes else []),
        "Speedup = torch fp32 eager median / variant median, both measured in the same interleaved rounds "
        "(higher is better). Latencies are per call of the whole batch, in ms."
        + (
            " The OpenVINO column is OpenVINO's out-of-the-box setup (stock unfolded model, its default "
            "precision for this CPU, LATENCY hint), timed in the same rounds."
            if peer
            else ""
        ),
        "",
    ]
    lines += _best_table(comparisons, peer)
    for cell in settings.cells:
        lines += _cell_table(cell, [c for c in comparisons if c.cell == cell])
    if allocators:
        lines += _allocator_table(allocators)
    lines += _fingerprint_table(fp)
    lines += [
        "### Method",
        "",
        "- Models: `build_model(get_cell(cell), seed=0)`, random-init full-size SegFormer; input "
        f"3x512x512 float32 per image, batch sizes {list(settings.batch_sizes)}.",
        "- Every variant is built by the artifact store, which verifies its outputs against the fp32 model "
        "before it can be used; INT8 static is calibrated on 8 synthetic street scenes.",
        f"- For each variant: {settings.warmup} warm-up calls each, then {settings.rounds} rounds of "
        f"{settings.iters_per_round} calls of the baseline, the variant"
        + (" and the OpenVINO peer" if peer else "")
        + ", the order rotating each round, so machine drift hits all of them; measured by "
        "`segopt_core.benchmark.measure_variant` in segopt's measuring process (the one optimize-all and "
        "`segopt benchmark` measure in), which loads the artifacts built here.",
        "- Timing: `time.perf_counter` around each call (with `torch.cuda.synchronize` on CUDA).",
        "",
        "### Reproduce",
        "",
        "```bash",
        command,
        "```",
        f"<!-- /cpu-kind: {key} -->",
        "",
    ]
    return "\n".join(lines)


def _openvino_versions() -> str:
    """'openvino X, nncf Y' of the installed packages."""
    from importlib import metadata

    found = []
    for name in ("openvino", "nncf"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def _best_table(comparisons: list[Comparison], peer: str) -> list[str]:
    """Per cell and batch: segopt's fastest non-OpenVINO variant, with eager and OpenVINO from its rounds."""
    ok = [c for c in comparisons if c.status == "ok" and not c.variant.startswith("openvino")]
    keys = sorted({(c.cell, c.batch_size) for c in ok})
    if not keys:
        return []
    lines = [
        "### segopt's best vs OpenVINO vs eager",
        "",
        f"| cell | batch | torch fp32 eager ms | OpenVINO `{peer or 'not installed'}` ms | segopt's best "
        "| its ms | × eager | × OpenVINO |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for cell, batch in keys:
        best = min(  # the fastest: a ratio would crown whichever variant's eager rounds were disturbed
            (c for c in ok if (c.cell, c.batch_size) == (cell, batch)), key=lambda c: c.median("candidate")
        )
        base, cand = best.median("baseline"), best.median("candidate")
        ov = best.median("peer") if best.peer_ms else None
        lines.append(
            f"| {cell} | {batch} | {base:.1f} | {f'{ov:.1f}' if ov else '—'} | `{best.variant}` | {cand:.1f} "
            f"| **{base / cand:.2f}×** | {f'**{ov / cand:.2f}×**' if ov else '—'} |"
        )
    return lines + ["", "Eager and OpenVINO figures are from the rounds of the variant shown.", ""]


def _cell_table(cell: str, comparisons: list[Comparison]) -> list[str]:
    """Markdown table of one cell (with OpenVINO peer columns when the peer ran)."""
    has_peer = any(c.peer_ms for c in comparisons)
    peer_head = " OpenVINO ms | variant × OpenVINO |" if has_peer else ""
    lines = [
        f"### {cell}",
        "",
        "| variant | device | batch | torch fp32 eager ms | variant ms | variant p90 ms | speedup |"
        + peer_head,
        "|---|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if has_peer else ""),
    ]
    problems = []
    for c in comparisons:
        if c.status != "ok":
            problems.append(f"- `{c.variant}` (batch {c.batch_size}): {c.status}: {c.reason}")
            continue
        base, cand = c.median("baseline"), c.median("candidate")
        disturbed = " †" if c.p90("candidate") > 2 * cand or c.p90("baseline") > 2 * base else ""
        row = (
            f"| `{c.variant}` | {c.device} | {c.batch_size} | {base:.1f} | {cand:.1f}{disturbed} "
            f"| {c.p90('candidate'):.1f} | **{base / cand:.2f}×** |"
        )
        if has_peer:
            ov = c.median("peer") if c.peer_ms else None
            row += f" {ov:.1f} | {ov / cand:.2f}× |" if ov else " — | — |"
        lines.append(row)
    legend = ["", "† p90 above twice the median (baseline or variant): disturbed rounds, distrust the ratio."]
    marked = any("†" in line for line in lines)
    return lines + (legend if marked else []) + ([""] + problems if problems else []) + [""]


RESULTS_HEADER = """# segopt headline benchmark

One section per kind of machine, each written by `python benchmarks/headline.py` on such a machine: a run
replaces its own kind's section (between the `cpu-kind` markers) and keeps the others. Compare figures only
within a section, and only when the fingerprints match. How to run and read it: [README.md](README.md).
"""


def merge_results(existing: str, section: str) -> str:
    """RESULTS.md with `section` replacing the section of the same kind (or appended)."""
    key = section.split("-->", 1)[0].removeprefix("<!-- cpu-kind:").strip()
    begin, end = f"<!-- cpu-kind: {key} -->", f"<!-- /cpu-kind: {key} -->"
    if "<!-- cpu-kind:" not in existing:
        existing = RESULTS_HEADER
    if begin in existing and end in existing:
        head, rest = existing.split(begin, 1)
        return head + section.rstrip("\n") + rest.split(end, 1)[1]
    return existing.rstrip("\n") + "\n\n" + section


def _allocator_table(results: list[dict]) -> list[str]:
    """Markdown table of the glibc vs tcmalloc A/B."""
    lines = [
        "### Allocator: torch fp32 eager, glibc malloc vs tcmalloc (LD_PRELOAD)",
        "",
        "| cell | glibc ms | tcmalloc ms | speedup |",
        "|---|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['cell']} | {r['glibc_ms']:.1f} | {r['tcmalloc_ms']:.1f} "
            f"| {r['glibc_ms'] / r['tcmalloc_ms']:.2f}× |"
        )
    return lines + ["", "Separate processes per allocator, alternating in rounds; batch 1.", ""]


def _fingerprint_table(fp: dict) -> list[str]:
    """Markdown table of the machine fingerprint."""
    lines = ["### Machine", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in fp.items()]
    return lines + [""]


# --- main --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="B0 only, batch 1, 2 short rounds (smoke test).")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "RESULTS.md", help="Markdown file.")
    parser.add_argument("--cells", default=",".join(DEFAULT_CELLS), help="Comma-separated matrix cells.")
    parser.add_argument("--batch-sizes", default="1", help="Comma-separated batch sizes (default 1).")
    parser.add_argument("--rounds", type=int, default=5, help="Interleaved rounds.")
    parser.add_argument("--iters-per-round", type=int, default=10, help="Calls per variant per round.")
    parser.add_argument("--warmup", type=int, default=5, help="Warm-up calls per variant.")
    parser.add_argument("--variants", default="", help="Only variants whose name contains one of these.")
    parser.add_argument("--threads", type=int, default=None, help="torch / ORT intra-op threads.")
    parser.add_argument(
        "--allocator",
        choices=("glibc", "tcmalloc", "jemalloc"),
        default=None,
        help="Run on this malloc (re-executes with LD_PRELOAD); default: whatever the process has.",
    )
    parser.add_argument("--no-allocator-ab", action="store_true", help="Skip the glibc vs tcmalloc table.")
    parser.add_argument(
        "--note", action="append", default=[], help="A line quoted under the section header (repeatable)."
    )
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "segopt-headline")
    parser.add_argument("--child-eager", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-iters", type=int, default=10, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the options (--quick overrides cells, batch sizes and rounds)."""
    if args.quick:
        cells, sizes, rounds, iters, warmup = (DEFAULT_CELLS[0],), (1,), 2, 3, 2
    else:
        cells, sizes = tuple(_split(args.cells)), tuple(int(b) for b in _split(args.batch_sizes))
        rounds, iters, warmup = args.rounds, args.iters_per_round, args.warmup
    return Settings(cells, sizes, rounds, iters, warmup, tuple(_split(args.variants)), args.threads)


def _split(text: str) -> list[str]:
    """'a,b' -> ['a', 'b']."""
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv: list[str] | None = None) -> None:
    """Run the headline benchmark and write the Markdown report."""
    args = parse_args(argv)
    if args.child_eager:
        return eager_child(args.child_eager, 1, args.child_iters, args.warmup, args.threads)
    if args.allocator:
        use_allocator(args.allocator)
    import torch

    from segopt_core.backends import ArtifactStore
    from segopt_core.benchmark import device_lock
    from segopt_core.logs import route_library_logging

    route_library_logging()  # NNCF's INFO lines and progress bars, transformers' loss_type notice
    settings = settings_from(args)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    store = ArtifactStore(args.work_dir / "artifacts")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    load_before = os.getloadavg()[0]
    with device_lock(device):
        comparisons = [
            c for cell in settings.cells for c in compare_cell(cell, settings, store, args.work_dir)
        ]
        library = find_allocator("tcmalloc")
        allocators = None
        if not args.no_allocator_ab and library is not None:
            log("allocator A/B: glibc vs tcmalloc")
            allocators = allocator_ab(settings, library)
    command = "python benchmarks/headline.py " + shlex.join(sys.argv[1:])
    peer = peer_options()
    load = f"1-min load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end."
    notes = (*args.note, load)
    section = render(comparisons, allocators, settings, command.strip(), peer.slug if peer else "", notes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    existing = args.out.read_text() if args.out.is_file() else ""
    args.out.write_text(merge_results(existing, section))
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
