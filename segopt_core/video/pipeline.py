"""Video pipeline: reader thread → batched inference → smoothing → overlay/writer thread, bounded queues."""

from __future__ import annotations

import json
import logging
import queue
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segopt_core.data.preprocess import preprocess
from segopt_core.predictor import Predictor
from segopt_core.variants import CellSpec
from segopt_core.video.metrics import ConsistencyMeter, still_pixels
from segopt_core.video.overlay import LabelStyle, OverlayStyle, colorize, render
from segopt_core.video.smoothing import SmoothingOptions, TemporalSmoother, dense_flow
from segopt_core.video.sources import FrameSource, VideoError, list_images, open_source
from segopt_core.video.writer import MaskFolderWriter, VideoWriter, check_writable, write_error

_END = None  # queue sentinel: no more frames
_POLL_S = 0.1  # how often blocked queue operations look at the stop flag

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoOptions:
    """How frames flow: offline (every frame) or live (drop when behind), batch size, model input size."""

    mode: str = "offline"
    batch_size: int = 4
    queue_size: int = 8  # frames per queue; bounds memory on any video length
    input_short: int | None = None  # model input short side; None = the cell's crop short side
    input_hw: tuple[int, int] | None = None  # fixed model input (h, w), for static-shape artifacts
    tau: float = 10.0  # static-region threshold: |Δgray| < τ (0..255) at score resolution
    consistency: bool = True  # compute optical flow and consistency metrics
    progress: bool = False
    metrics_every: int = 25  # frames between on_metrics callbacks

    def __post_init__(self) -> None:
        if self.mode not in ("offline", "live"):
            raise ValueError(f"mode must be 'offline' or 'live', got {self.mode!r}")
        if self.batch_size < 1 or self.queue_size < 1:
            raise ValueError(
                f"batch_size and queue_size must be >= 1, got {self.batch_size}, {self.queue_size}"
            )
        if self.input_short is not None and self.input_short < 32:
            raise ValueError(f"input_short must be >= 32, got {self.input_short}")
        if self.tau <= 0:
            raise ValueError(f"tau must be positive, got {self.tau}")


@dataclass(frozen=True)
class VideoOutputs:
    """Where results go: the overlay video, optional mask video, PNG masks folder and JSON summary."""

    out: Path
    mask_video: Path | None = None
    masks_dir: Path | None = None
    summary: Path | None = None


@dataclass
class _Stats:
    """Counters shared by the three threads (each field written by one thread only)."""

    read: int = 0
    dropped: int = 0
    processed: int = 0
    written: int = 0
    model_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


def model_input_size(frame_hw: tuple[int, int], short: int) -> tuple[int, int]:
    """Keep-aspect size whose short side is `short`, each side rounded to a multiple of 32 (≥ 32)."""
    scale = short / min(frame_hw)
    return tuple(max(32, int(round(side * scale / 32)) * 32) for side in frame_hw)  # type: ignore[return-value]


def prepare_batch(frames: list[np.ndarray], input_hw: tuple[int, int], spec: CellSpec) -> np.ndarray:
    """Resize RGB frames to the model input size and normalize: float32 (N, 3, h, w)."""
    h, w = input_hw
    resized = (
        f if f.shape[:2] == input_hw else cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR)
        for f in frames
    )
    return np.stack([preprocess(f, spec) for f in resized])


def small_gray(frame: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """The frame as uint8 grayscale at the score resolution (area-averaged, which also damps noise)."""
    return cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (hw[1], hw[0]), interpolation=cv2.INTER_AREA)


class GroundTruth:
    """Per-frame ground-truth label PNGs of a folder; the i-th file (natural order) labels frame i."""

    def __init__(self, folder: str | Path) -> None:
        if not Path(folder).is_dir():
            raise VideoError(
                f"ground-truth masks {folder}: not a folder; pass the folder of per-frame PNG masks"
            )
        self.paths = list_images(str(folder))

    def check(self, frame_hw: tuple[int, int]) -> None:
        """Every mask's header (single channel, the frames' size) before any frame is written: a bad mask
        fails the run at once, with nothing written, instead of after the frames before it."""
        from PIL import Image, UnidentifiedImageError

        for path in self.paths:
            try:
                with Image.open(path) as img:
                    got = (img.height, img.width) if len(img.getbands()) == 1 else f"{img.mode} image"
            except (OSError, UnidentifiedImageError) as exc:
                got = f"unreadable ({exc})"
            if got != tuple(frame_hw):
                raise VideoError(
                    f"ground-truth mask {path}: expected a single-channel {tuple(frame_hw)} label PNG, "
                    f"got {got}"
                )

    def get(self, index: int, frame_hw: tuple[int, int]) -> np.ndarray | None:
        """The label map of frame `index` (None past the last mask); VideoError on a size mismatch."""
        if index >= len(self.paths):
            return None
        label = cv2.imread(str(self.paths[index]), cv2.IMREAD_UNCHANGED)
        if label is None or label.ndim != 2 or label.shape != frame_hw:
            got = None if label is None else label.shape
            raise VideoError(
                f"ground-truth mask {self.paths[index]}: expected a single-channel {frame_hw} label PNG, "
                f"got {got}"
            )
        return label


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Blocking put that gives up when the pipeline is stopping."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    """Blocking get that returns the end sentinel when the pipeline is stopping."""
    while not stop.is_set():
        try:
            return q.get(timeout=_POLL_S)
        except queue.Empty:
            continue
    return _END


def _put_dropping_oldest(q: queue.Queue, item: Any, stats: _Stats) -> None:
    """Live mode: never wait; when the queue is full the oldest frame is dropped (counted)."""
    while True:
        try:
            q.put_nowait(item)
            return
        except queue.Full:
            try:
                q.get_nowait()
                stats.dropped += 1
            except queue.Empty:
                pass


def _reader(
    source: FrameSource,
    prepare: Callable[[np.ndarray], np.ndarray],
    q: queue.Queue,
    stop: threading.Event,
    stats: _Stats,
    live: bool,
) -> None:
    """Decode and preprocess frames into the queue; a live run on a file is paced at its frame rate."""
    pace = live and not source.info.paced
    start = time.perf_counter()
    try:
        for index, frame in enumerate(source):
            if stop.is_set():
                break
            if pace:
                time.sleep(max(0.0, start + index / source.info.fps - time.perf_counter()))
            stats.read += 1
            t_read = time.perf_counter()
            item = (index, frame, t_read, prepare(frame))  # preprocessing overlaps with inference
            if live:
                _put_dropping_oldest(q, item, stats)
            elif not _put(q, item, stop):
                break
    except BaseException as exc:  # reported by the main thread after the frames done are saved
        stats.errors.append(exc)
    finally:
        _put(q, _END, stop)


class _Outputs:
    """The open output writers; closed in `close()` whatever happened."""

    def __init__(self, outputs: VideoOutputs, fps: float, size: tuple[int, int], side_by_side: bool) -> None:
        self.video = self.mask_video = self.masks = None
        out_size = (size[0], size[1] * (2 if side_by_side else 1))
        try:
            self.video = VideoWriter(outputs.out, fps, out_size)
            self.mask_video = VideoWriter(outputs.mask_video, fps, size) if outputs.mask_video else None
            self.masks = MaskFolderWriter(outputs.masks_dir) if outputs.masks_dir else None
        except BaseException:
            self.close()
            raise

    def discard(self) -> None:
        """Remove what a failed run wrote besides the overlay (which its writer removed already)."""
        if self.masks is not None:
            self.masks.discard()
        if self.mask_video is not None and self.mask_video.published:
            self.mask_video.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Close every writer; the first error (e.g. a full disk) is raised after all were closed."""
        errors = []
        for writer in (self.video, self.mask_video, self.masks):
            if writer is not None:
                try:
                    writer.close()
                except Exception as exc:
                    errors.append(exc)
        if errors:
            raise errors[0]


def _writer(
    q: queue.Queue,
    outs: _Outputs,
    labels_style: LabelStyle,
    style: OverlayStyle,
    stop: threading.Event,
    stats: _Stats,
    progress: Any,
    postprocess: Callable[[int, np.ndarray, np.ndarray], np.ndarray],
) -> None:
    """Smooth, measure, render and write frames in order until the end sentinel."""
    lut = labels_style.lut()
    try:
        while (item := _get(q, stop)) is not _END:
            (index, frame, t_read), logits = item
            labels = postprocess(index, frame, logits)
            outs.video.write(render(frame, labels, labels_style, style))
            if outs.mask_video is not None:
                outs.mask_video.write(colorize(labels, lut))
            if outs.masks is not None:
                outs.masks.write(index, labels)
            stats.written += 1
            stats.latencies.append(time.perf_counter() - t_read)
            progress.update(1)
    except BaseException as exc:
        stats.errors.append(exc)
        stop.set()


class _Segmenter:
    """Preprocess (reader thread), batched inference (main thread), smoothing and metrics (writer thread)."""

    def __init__(
        self,
        predictor: Predictor,
        spec: CellSpec,
        smoothing: SmoothingOptions,
        options: VideoOptions,
        gt: GroundTruth | None,
    ) -> None:
        self.predictor, self.spec, self.gt = predictor, spec, gt
        self.smoothing, self.options = smoothing, options
        self.smoother = TemporalSmoother(smoothing)
        self.raw = ConsistencyMeter(spec.num_classes)
        self.smoothed = ConsistencyMeter(spec.num_classes)
        self.scene_cuts = 0
        self.score_hw: tuple[int, int] | None = None
        self._prev_gray: np.ndarray | None = None

    def input_size(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """The model input size for frames of this size."""
        if self.options.input_hw:
            return self.options.input_hw
        return model_input_size(frame_hw, self.options.input_short or min(self.spec.crop_size))

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """One frame resized to the model input and normalized: float32 (3, h, w)."""
        return prepare_batch([frame], self.input_size(frame.shape[:2]), self.spec)[0]

    def run_batch(self, items: list[tuple], stats: _Stats) -> list[tuple]:
        """((index, frame, t_read), (C, h, w) logits) per frame of one input size."""
        batch = np.stack([item[3] for item in items])
        start = time.perf_counter()
        try:
            logits = np.asarray(self.predictor(batch), dtype=np.float32)
        except Exception as exc:
            raise VideoError(
                f"predictor {getattr(self.predictor, 'name', '?')}: failed on a batch of shape {batch.shape} "
                f"({type(exc).__name__}: {exc}); for a fixed-shape artifact pass its input size "
                "(--input-size HxW)"
            ) from exc
        stats.model_s += time.perf_counter() - start
        return [(item[:3], scores) for item, scores in zip(items, logits, strict=True)]

    def postprocess(self, index: int, frame: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Smooth one frame's logits, update both metric streams; the frame-size label map to write."""
        self.score_hw = logits.shape[1:]
        gray = small_gray(frame, self.score_hw)
        still, flow = self._pair_geometry(gray)
        scores = self.smoother.update(logits, gray, flow if self.smoothing.motion_aware else None)
        raw_labels = logits.argmax(0).astype(np.uint8)
        labels = scores.argmax(0).astype(np.uint8) if self.smoothing.alpha > 0 else raw_labels
        self.raw.update(raw_labels, still, flow)
        self.smoothed.update(labels, still, flow)
        full = _upsample(labels, frame.shape[:2])
        if self.gt is not None and (label := self.gt.get(index, frame.shape[:2])) is not None:
            self.raw.update_gt(_upsample(raw_labels, frame.shape[:2]), label)
            self.smoothed.update_gt(full, label)
        return full

    def _pair_geometry(self, gray: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Static-pixel mask and flow (t → t−1) for the pair with the previous frame; None after cuts."""
        prev, self._prev_gray = self._prev_gray, gray
        if prev is None or prev.shape != gray.shape:
            return None, None
        if float(cv2.absdiff(prev, gray).mean()) > self.smoothing.scene_cut_threshold:
            self.scene_cuts += 1
            self.raw.break_sequence()
            self.smoothed.break_sequence()
            return None, None
        need_flow = self.options.consistency or self.smoothing.motion_aware
        flow = dense_flow(gray, prev) if need_flow else None
        still = still_pixels(prev, gray, self.options.tau) if self.options.consistency else None
        return still, flow


def _upsample(labels: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map to the frame size."""
    if labels.shape == hw:
        return labels
    return cv2.resize(labels, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)


def _next_batch(q: queue.Queue, stop: threading.Event, n: int, live: bool) -> tuple[list[tuple], bool]:
    """Up to n queued frames of one size, and whether the stream ended; live mode never waits for more."""
    first = _get(q, stop)
    if first is _END:
        return [], True
    items = [first]
    while len(items) < n:
        try:
            item = q.get_nowait() if live else q.get(timeout=_POLL_S)
        except queue.Empty:
            if live or stop.is_set():
                break
            continue
        if item is _END:
            return items, True
        items.append(item)
    return items, False


def _split_by_size(items: list[tuple]) -> list[list[tuple]]:
    """Consecutive runs of frames with the same model input size (image sequences may change size)."""
    runs: list[list[tuple]] = []
    for item in items:
        if runs and runs[-1][-1][3].shape == item[3].shape:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def segment_video(
    source: FrameSource | str | int | Path,
    predictor: Predictor,
    spec: CellSpec,
    outputs: VideoOutputs,
    smoothing: SmoothingOptions | None = None,
    style: OverlayStyle | None = None,
    options: VideoOptions | None = None,
    gt_masks: str | Path | None = None,
    on_metrics: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Segment a video source into an overlay video (+ optional masks) and return/write the JSON summary."""
    smoothing, style, options = (
        smoothing or SmoothingOptions(),
        style or OverlayStyle(),
        options or VideoOptions(),
    )
    if outputs.summary is not None:
        check_writable(Path(outputs.summary), "summary")
    gt = GroundTruth(gt_masks) if gt_masks else None
    src = source if isinstance(source, FrameSource) else open_source(source)
    try:
        if gt is not None:
            gt.check(src.info.size)
        outs = _Outputs(outputs, src.info.fps, src.info.size, style.side_by_side)
    except BaseException:
        src.close()
        raise
    run = _Run(src, outs, _Segmenter(predictor, spec, smoothing, options, gt), LabelStyle.from_spec(spec))
    summary = run.execute(style, options, on_metrics)
    summary.update(
        options={"smoothing": asdict(smoothing), "overlay": asdict(style), "pipeline": asdict(options)},
        outputs={k: (str(v) if v else None) for k, v in asdict(outputs).items()},
        predictor={"name": predictor.name, "precision": predictor.precision, "device": predictor.device},
        cell=spec.name,
    )
    for warning in summary["warnings"]:  # e.g. a truncated file: said on the console, not only in the JSON
        log.warning("warning: %s: %s", src.info.uri, warning)
    if summary["error"] and not Path(outputs.out).exists():  # nothing was kept: no summary, masks either
        outs.discard()
        raise VideoError(summary["error"])
    if outputs.summary is not None:
        try:
            write_summary(Path(outputs.summary), summary)
        except VideoError as exc:
            if not summary["error"]:
                raise
            summary["error"] += f"; {exc}"  # the first failure leads (likely the same full disk)
    if summary["error"]:
        saved = f"{run.stats.written} frames done were saved to {outputs.out}"
        raise VideoError(f"{summary['error']}" + (f" ({saved})" if Path(outputs.out).exists() else ""))
    return summary


def write_summary(path: Path, summary: dict[str, Any]) -> Path:
    """The JSON summary, written atomically (never a 0-byte or half file); VideoError names a failure."""
    from segopt_core.atomic import atomic_file

    text = json.dumps(summary, indent=2)
    try:
        return atomic_file(path, lambda tmp: tmp.write_text(text))
    except OSError as exc:
        raise write_error("summary", path, exc) from None


class _Run:
    """One execution: starts the reader and writer threads, runs inference, always closes the outputs."""

    def __init__(
        self, src: FrameSource, outs: _Outputs, segmenter: _Segmenter, labels_style: LabelStyle
    ) -> None:
        self.src, self.outs, self.segmenter, self.labels_style = src, outs, segmenter, labels_style
        self.stats = _Stats()
        self.stop = threading.Event()
        self.interrupted = False

    def execute(
        self, style: OverlayStyle, options: VideoOptions, on_metrics: Callable[[int, dict], None] | None
    ) -> dict[str, Any]:
        """Run to the end of the source (or the first error) and summarize."""
        from tqdm.auto import tqdm

        in_q: queue.Queue = queue.Queue(options.queue_size)
        out_q: queue.Queue = queue.Queue(options.queue_size)
        live = options.mode == "live"
        progress = tqdm(
            total=self.src.info.n_frames, disable=not options.progress, unit="frame", desc="video"
        )
        rss_start = _rss_mb()
        start = time.perf_counter()
        reader = threading.Thread(
            target=_reader,
            args=(self.src, self.segmenter.prepare, in_q, self.stop, self.stats, live),
            daemon=True,
        )
        writer = threading.Thread(
            target=_writer,
            args=(
                out_q,
                self.outs,
                self.labels_style,
                style,
                self.stop,
                self.stats,
                progress,
                self.segmenter.postprocess,
            ),
            daemon=True,
        )
        reader.start()
        writer.start()
        try:
            self._infer(in_q, out_q, options, on_metrics, start)
        except KeyboardInterrupt:  # Ctrl-C is how a live camera run ends: a clean stop, not an error
            self.interrupted = True
        except BaseException as exc:  # the writer still drains what is queued, so those frames are saved
            self.stats.errors.append(exc)
        finally:
            _put(out_q, _END, self.stop)
            writer.join()
            self.stop.set()  # unblocks a reader waiting on a full queue
            reader.join()
            try:
                self.outs.close()
            except Exception as exc:  # e.g. the disk filled up: reported in the summary like other errors
                self.stats.errors.append(exc)
            self.src.close()
            progress.close()
        return self._summary(time.perf_counter() - start, rss_start)

    def _infer(
        self,
        in_q: queue.Queue,
        out_q: queue.Queue,
        options: VideoOptions,
        on_metrics: Callable[[int, dict], None] | None,
        start: float,
    ) -> None:
        ended = False
        while not ended and not self.stop.is_set():
            items, ended = _next_batch(in_q, self.stop, options.batch_size, options.mode == "live")
            for run in _split_by_size(items):
                for result in self.segmenter.run_batch(run, self.stats):
                    if not _put(out_q, result, self.stop):
                        return
                    self.stats.processed += 1
                    if on_metrics and self.stats.processed % options.metrics_every == 0:
                        on_metrics(self.stats.processed, self._progress_metrics(start))

    def _progress_metrics(self, start: float) -> dict[str, float]:
        elapsed = time.perf_counter() - start
        return {
            "fps_end_to_end": self.stats.processed / elapsed if elapsed else 0.0,
            "frames_dropped": float(self.stats.dropped),
        }

    def _summary(self, wall_s: float, rss_start: float) -> dict[str, Any]:
        stats, info, seg = self.stats, self.src.info, self.segmenter
        latencies = np.asarray(stats.latencies) * 1000
        warnings = []
        if info.n_frames and stats.read < info.n_frames and not (stats.errors or self.interrupted):
            warnings.append(
                f"source reported {info.n_frames} frames but only {stats.read} could be decoded "
                "(truncated file?)"
            )
        if self.src.stop_reason:
            warnings.append(self.src.stop_reason)
        if self.interrupted:
            warnings.append(f"interrupted by the user after {stats.written} frames")
        error = _describe(stats.errors[0]) if stats.errors else None
        return {
            "source": asdict(info),
            "frames": {
                "read": stats.read,
                "processed": stats.processed,
                "dropped": stats.dropped,
                "written": stats.written,
                "expected": info.n_frames,
                "scene_cuts": seg.scene_cuts,
                "smoother_resets": seg.smoother.resets,
            },
            "performance": {
                "wall_s": round(wall_s, 3),
                "model_s": round(stats.model_s, 3),
                "fps_end_to_end": round(stats.written / wall_s, 2) if wall_s else None,
                "fps_model": round(stats.processed / stats.model_s, 2) if stats.model_s else None,
                "latency_ms_median": round(float(np.median(latencies)), 2) if latencies.size else None,
                "latency_ms_p99": round(float(np.percentile(latencies, 99)), 2) if latencies.size else None,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "rss_growth_mb": round(_rss_mb() - rss_start, 1),
            },
            "consistency": {
                "tau": seg.options.tau,
                "score_hw": list(seg.score_hw) if seg.score_hw else None,
                "raw": seg.raw.summary(),
                "smoothed": seg.smoothed.summary(),
            },
            "warnings": warnings,
            "error": error,
        }


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, VideoError) else f"{type(exc).__name__}: {exc}"


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def resolve_predictor(
    checkpoint: str | Path | None,
    artifact: str | Path | None,
    cell: str | None = None,
    device: str = "cpu",
) -> tuple[Predictor, CellSpec]:
    """The predictor and cell spec of a checkpoint file or an optimized artifact folder (exactly one)."""
    if (checkpoint is None) == (artifact is None):
        raise VideoError("pass exactly one of --checkpoint PATH or --artifact DIR")
    if checkpoint is not None:
        from segopt_core.checkpoints import load_checkpoint
        from segopt_core.predictor import TorchPredictor

        loaded = load_checkpoint(checkpoint, cell)
        return TorchPredictor(loaded.model, device=device), loaded.spec
    from segopt_core.backends import ArtifactError, BackendUnavailable, load_predictor

    try:
        return load_predictor(artifact), _artifact_spec(Path(artifact), cell)
    except (ArtifactError, BackendUnavailable) as exc:
        raise VideoError(f"artifact {artifact}: {exc}") from exc


def _artifact_spec(artifact: Path, cell: str | None) -> CellSpec:
    """The cell of an artifact: --cell when given, else the spec stored in its metadata."""
    from segopt_core.backends import read_metadata
    from segopt_core.backends.source import spec_from_dict
    from segopt_core.variants import get_cell

    return get_cell(cell) if cell else spec_from_dict(read_metadata(artifact)["spec"])
