"""Video pipeline: reader (decode, resize) → main (model, propagation) → overlay → encoder threads, and a
metrics thread off the critical path; bounded queues between them."""

from __future__ import annotations

import collections
import concurrent.futures as cf
import json
import logging
import os
import queue
import resource
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segopt_core.predictor import Predictor
from segopt_core.variants import CellSpec
from segopt_core.video.flow import FLOW_METHOD, FlowError, dense_flow
from segopt_core.video.keyframes import KeyframePolicy
from segopt_core.video.metrics import ConsistencyMeter, still_pixels
from segopt_core.video.overlay import LabelStyle, OverlayStyle, colorize, render
from segopt_core.video.segmenter import (
    BatchSizer,
    Frame,
    Segmenter,
    model_input_size,
    prepare_batch,
    small_gray,
)
from segopt_core.video.smoothing import SmoothingOptions
from segopt_core.video.sources import FrameSource, VideoError, list_images, open_source
from segopt_core.video.stages import StageTimes
from segopt_core.video.writer import MaskFolderWriter, VideoWriter, check_writable, write_error

__all__ = [
    "GroundTruth", "VideoOptions", "VideoOutputs", "model_input_size", "model_threads", "prepare_batch",
    "resolve_predictor",
    "segment_video", "small_gray", "write_summary",
]  # fmt: skip

_END = None  # queue sentinel: no more frames
_NOTHING = object()  # a non-blocking get found the queue empty
_POLL_S = 0.1  # how often blocked queue operations look at the stop flag
METRICS_MODES = ("auto", "full", "sampled", "off")
FULL_METRICS_MAX_FRAMES = 300  # `auto`: full metrics up to this many frames, sampled beyond (or unknown)
SAMPLE_BLOCK = 17  # `sampled`: runs of 17 consecutive frames (16 pairs: one VC_16 window) ...
SAMPLE_PERIOD = 4  # ... every 4th run, i.e. a quarter of the frames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoOptions:
    """How frames flow: offline (every frame) or live (drop when behind), keyframes, batch size, metrics."""

    mode: str = "offline"
    batch_size: int | None = None  # None: picked from measured per-image cost (per-frame policy; live: 1)
    queue_size: int = 8  # frames per queue; bounds memory on any video length
    input_short: int | None = None  # model input short side; None = the cell's crop short side
    input_hw: tuple[int, int] | None = None  # fixed model input (h, w), for static-shape artifacts
    tau: float = 10.0  # static-region threshold: |Δgray| < τ (0..255) at score resolution
    keyframes: KeyframePolicy = field(default_factory=KeyframePolicy)  # default: the model on every frame
    model_threads: int | None = None  # torch intra-op threads for the run; None: `model_threads(options)`
    metrics: str = "auto"  # full | sampled | off | auto (full up to 300 frames, else sampled)
    progress: bool = False
    metrics_every: int = 25  # frames between on_metrics callbacks

    def __post_init__(self) -> None:
        if self.mode not in ("offline", "live"):
            raise ValueError(f"mode must be 'offline' or 'live', got {self.mode!r}")
        if (self.batch_size is not None and self.batch_size < 1) or self.queue_size < 1:
            raise ValueError(
                f"batch_size and queue_size must be >= 1, got {self.batch_size}, {self.queue_size}"
            )
        if self.input_short is not None and self.input_short < 32:
            raise ValueError(f"input_short must be >= 32, got {self.input_short}")
        if self.tau <= 0:
            raise ValueError(f"tau must be positive, got {self.tau}")
        if self.metrics not in METRICS_MODES:
            raise ValueError(f"--metrics {self.metrics}: the valid values are {', '.join(METRICS_MODES)}")

    def metrics_mode(self, n_frames: int | None) -> str:
        """full, sampled or off for a source of n_frames (None: unknown, e.g. a camera)."""
        if self.metrics != "auto":
            return self.metrics
        return "full" if n_frames is not None and n_frames <= FULL_METRICS_MAX_FRAMES else "sampled"


@dataclass(frozen=True)
class VideoOutputs:
    """Where results go: the overlay video, optional mask video, PNG masks folder and JSON summary."""

    out: Path
    mask_video: Path | None = None
    masks_dir: Path | None = None
    summary: Path | None = None


@dataclass
class _Stats:
    """Counters shared by the threads (each field written by one thread only)."""

    read: int = 0
    dropped: int = 0
    processed: int = 0
    written: int = 0
    metrics_skipped: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


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


def _get_nowait(q: queue.Queue) -> Any:
    """The next queued item, or _NOTHING when none is there yet."""
    try:
        return q.get_nowait()
    except queue.Empty:
        return _NOTHING


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


def _upsample(labels: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label (or colour) map to the frame size."""
    if labels.shape[:2] == hw:
        return labels
    return cv2.resize(labels, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)


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


class _Meters:
    """The metrics thread's state: consistency of the written labels (and of the raw per-frame labels)."""

    def __init__(self, num_classes: int, tau: float, gt: GroundTruth | None, raw: bool) -> None:
        self.tau, self.gt = tau, gt
        self.smoothed = ConsistencyMeter(num_classes)
        self.raw = ConsistencyMeter(num_classes) if raw else None
        self._prev_gray: np.ndarray | None = None

    def update(self, frame: Frame, labels: np.ndarray, raw: np.ndarray | None, full: np.ndarray) -> None:
        """One frame: flows to the previous measured frame, both meters, ground truth."""
        prev, self._prev_gray = self._prev_gray, frame.gray
        meters = [m for m in (self.smoothed, self.raw) if m is not None]
        if frame.scene_cut or prev is None or prev.shape != frame.gray.shape:
            for meter in meters:
                meter.break_sequence()
            prev = None
        flow = forward = still = None
        if prev is not None:
            try:
                flow, forward = dense_flow(frame.gray, prev), dense_flow(prev, frame.gray)
            except FlowError:
                flow = forward = None
            still = still_pixels(prev, frame.gray, self.tau)
        label = self.gt.get(frame.index, frame.image.shape[:2]) if self.gt is not None else None
        small_gt = _upsample(label, labels.shape) if label is not None else None
        self.smoothed.update(labels, still, flow, forward, small_gt)
        if label is not None:
            self.smoothed.update_gt(full, label)
        if self.raw is not None and raw is not None:
            self.raw.update(raw, still, flow, forward, small_gt)
            if label is not None:
                self.raw.update_gt(_upsample(raw, label.shape), label)

    def gap(self) -> None:
        """Frames were not measured (sampling): the next one starts a new sequence."""
        self._prev_gray = None


class _Run:
    """One execution: reader → main (model, propagation) → overlay → encoder threads, plus metrics."""

    def __init__(
        self,
        src: FrameSource,
        outs: _Outputs,
        segmenter: Segmenter,
        labels_style: LabelStyle,
        style: OverlayStyle,
        options: VideoOptions,
        gt: GroundTruth | None,
    ) -> None:
        self.src, self.outs, self.seg, self.labels_style = src, outs, segmenter, labels_style
        self.style, self.options = style, options
        self.stats = _Stats()
        self.stop = threading.Event()
        self.interrupted = False
        self.live = options.mode == "live"
        self.metrics_mode = options.metrics_mode(src.info.n_frames)
        self.meters = _Meters(segmenter.spec.num_classes, options.tau, gt, raw=segmenter.policy.per_frame)
        # keyframe policies run the model one frame at a time: the next decision depends on the result
        self.sizer = BatchSizer(options.batch_size if segmenter.policy.per_frame else 1, self.live)
        self.progress: Any = None

    # -- threads ------------------------------------------------------------------------------------------
    def _read(self, q: queue.Queue) -> None:
        """Decode and resize frames into the queue; a live run on a file is paced at its frame rate."""
        pace = self.live and not self.src.info.paced
        start = time.perf_counter()
        try:
            frames = iter(self.src)
            index = 0
            while not self.stop.is_set():
                if pace:
                    time.sleep(max(0.0, start + index / self.src.info.fps - time.perf_counter()))
                wall, cpu = time.perf_counter(), time.thread_time()
                image = next(frames, None)
                if image is None:
                    break
                self.seg.stages.add("decode", time.perf_counter() - wall, time.thread_time() - cpu)
                self.stats.read += 1
                item = self.seg.prepare(index, image, time.perf_counter())
                index += 1
                if self.live:
                    _put_dropping_oldest(q, item, self.stats)
                elif not _put(q, item, self.stop):
                    break
        except BaseException as exc:  # reported by the main thread after the frames done are saved
            self.stats.errors.append(exc)
        finally:
            _put(q, _END, self.stop)

    def _overlay(self, q: queue.Queue, encode_q: queue.Queue, metrics_q: queue.Queue | None) -> None:
        """Smooth (per-frame policy), upsample, render the overlay; hand frames to the encoder and metrics."""
        stages, lut = self.seg.stages, self.labels_style.lut()
        try:
            while (item := _get(q, self.stop)) is not _END:
                frame, payload = item
                if payload.ndim == 3:  # per-frame policy: logits; the raw stream only feeds the metrics
                    labels, raw = self.seg.smooth(frame, payload, raw=metrics_q is not None)
                else:
                    labels, raw = payload, None
                hw = frame.image.shape[:2]
                with stages.measure("upsample"):
                    full = _upsample(labels, hw)
                with stages.measure("overlay"):
                    color = _upsample(colorize(labels, lut), hw)  # LUT at score resolution, then nearest
                    out = render(frame.image, full, self.labels_style, self.style, color=color)
                if not _put(encode_q, (frame, out, full, color), self.stop):
                    return
                if metrics_q is not None:
                    self._offer_metrics(metrics_q, (frame, labels, raw, full))
        except BaseException as exc:
            self.stats.errors.append(exc)
            self.stop.set()
        finally:
            _put(encode_q, _END, self.stop)
            if metrics_q is not None:
                _put(metrics_q, _END, self.stop)

    def _offer_metrics(self, q: queue.Queue, item: tuple) -> None:
        """Offline: every measured frame is queued; live: skipped (counted) rather than slowing the video."""
        if self.live:
            try:
                q.put_nowait(item)
            except queue.Full:
                self.stats.metrics_skipped += 1
        else:
            _put(q, item, self.stop)

    def _encode(self, q: queue.Queue) -> None:
        """Write frames in order until the end sentinel; latency is arrival → overlay written."""
        try:
            while (item := _get(q, self.stop)) is not _END:
                frame, out, full, color = item
                with self.seg.stages.measure("encode"):
                    self.outs.video.write(out)
                    if self.outs.mask_video is not None:
                        self.outs.mask_video.write(color)
                    if self.outs.masks is not None:
                        self.outs.masks.write(frame.index, full)
                self.stats.written += 1
                self.stats.latencies.append(time.perf_counter() - frame.arrival)
                self.progress.update(1)
                if self.stats.written % 10 == 0:
                    self.progress.set_postfix_str(self.seg.stages.progress_line(), refresh=False)
        except BaseException as exc:
            self.stats.errors.append(exc)
            self.stop.set()

    def _measure(self, q: queue.Queue) -> None:
        """Consistency metrics (full, or sampled runs of frames), off the frames' critical path."""
        try:
            while (item := _get(q, self.stop)) is not _END:
                frame = item[0]
                if self.metrics_mode == "sampled" and (frame.index // SAMPLE_BLOCK) % SAMPLE_PERIOD:
                    self.meters.gap()
                    continue
                with self.seg.stages.measure("metrics"):
                    self.meters.update(*item)
        except BaseException as exc:
            self.stats.errors.append(exc)
            self.stop.set()

    # -- main thread --------------------------------------------------------------------------------------
    def execute(self, on_metrics: Callable[[int, dict], None] | None) -> dict[str, Any]:
        """Run to the end of the source (or the first error) and summarize."""
        from tqdm.auto import tqdm

        size = self.options.queue_size
        in_q, out_q, encode_q = queue.Queue(size), queue.Queue(size), queue.Queue(size)
        metrics_q = queue.Queue(4 * size) if self.metrics_mode != "off" else None
        self.progress = tqdm(
            total=self.src.info.n_frames, disable=not self.options.progress, unit="frame", desc="video"
        )
        import torch

        cv_threads, torch_threads = cv2.getNumThreads(), torch.get_num_threads()
        cv2.setNumThreads(1)  # parallelism comes from the pipeline's threads, not from each OpenCV call
        self.torch_threads = model_threads(self.options)
        torch.set_num_threads(self.torch_threads)
        rss_start = _rss_mb()
        start = time.perf_counter()
        threads = [
            threading.Thread(target=self._read, args=(in_q,), daemon=True),
            threading.Thread(target=self._overlay, args=(out_q, encode_q, metrics_q), daemon=True),
            threading.Thread(target=self._encode, args=(encode_q,), daemon=True),
        ]
        if metrics_q is not None:
            threads.append(threading.Thread(target=self._measure, args=(metrics_q,), daemon=True))
        for thread in threads:
            thread.start()
        try:
            self._infer(in_q, out_q, on_metrics, start)
        except KeyboardInterrupt:  # Ctrl-C is how a live camera run ends: a clean stop, not an error
            self.interrupted = True
        except BaseException as exc:  # the writer still drains what is queued, so those frames are saved
            self.stats.errors.append(exc)
        finally:
            _put(out_q, _END, self.stop)
            for thread in threads[1:]:
                thread.join()
            self.stop.set()  # unblocks a reader waiting on a full queue
            threads[0].join()
            wall_s = time.perf_counter() - start
            try:
                self.outs.close()
            except Exception as exc:  # e.g. the disk filled up: reported in the summary like other errors
                self.stats.errors.append(exc)
            self.src.close()
            self.progress.close()
            cv2.setNumThreads(cv_threads)
            torch.set_num_threads(torch_threads)
        return self._summary(wall_s, rss_start)

    def _infer(
        self,
        in_q: queue.Queue,
        out_q: queue.Queue,
        on_metrics: Callable[[int, dict], None] | None,
        start: float,
    ) -> None:
        results = self._per_frame(in_q) if self.seg.policy.per_frame else self._keyframes(in_q)
        for result in results:
            if not _put(out_q, result, self.stop):
                return
            self.stats.processed += 1
            if on_metrics and self.stats.processed % self.options.metrics_every == 0:
                on_metrics(self.stats.processed, self._progress_metrics(start))

    def _per_frame(self, in_q: queue.Queue) -> Iterator[tuple[Frame, np.ndarray]]:
        """Batched model calls on every frame: (frame, logits); the overlay thread smooths them."""
        ended = False
        while not ended and not self.stop.is_set():
            items, ended = _next_batch(in_q, self.stop, self.sizer.next_size(), self.live)
            for run in _split_by_size(items):
                for frame in run:
                    self.seg.mark_scene_cut(frame)
                yield from zip(run, self._predict_run(run), strict=True)

    def _predict_run(self, run: list[Frame]) -> np.ndarray:
        batch = np.stack([frame.model_input for frame in run])
        started = time.perf_counter()
        try:
            logits = self.seg.predict(batch)
        except VideoError:
            if len(run) == 1 or self.sizer.fixed:
                raise
            self.sizer.failed()  # a trial size the artifact refuses: one frame at a time from now on
            return np.concatenate([self.seg.predict(batch[i : i + 1]) for i in range(len(run))])
        self.sizer.record(len(run), time.perf_counter() - started)
        return logits

    def _keyframes(self, in_q: queue.Queue) -> Iterator[tuple[Frame, np.ndarray]]:
        """One frame at a time: propagated labels, or a keyframe's (frame, labels).

        The model runs in a worker thread, ahead: as soon as the frame the interval makes the next keyframe
        has been decoded, its call starts, while this thread propagates the frames before it (the model no
        longer waits for them, nor they for it). A frame that an earlier trigger made the keyframe instead is
        called for when it comes; a call made ahead for a frame that is then propagated is not used
        (counted). The labels are those of calling the model in turn: only the calls' timing changes.
        """
        interval = self.seg.policy.interval
        with _Lookahead(in_q, self.stop, self.live, self.seg.infer) as frames:
            while (frame := frames.next()) is not None:
                self.seg.mark_scene_cut(frame)
                outcome = self.seg.propagate(frame)
                if outcome.labels is None:
                    logits = frames.call(frame)
                    frames.call_ahead(interval - 1)  # the keyframe after this one, by the interval
                    labels = self.seg.keyframe(frame, logits.result(), outcome)
                else:
                    labels = outcome.labels
                self.seg.counters.model_calls_unused += frames.done(frame, used=outcome.labels is None)
                yield frame, labels
                frames.call_ahead(self.seg.propagator.keyframe_due_in())

    def _progress_metrics(self, start: float) -> dict[str, float]:
        elapsed = time.perf_counter() - start
        return {
            "fps_end_to_end": self.stats.processed / elapsed if elapsed else 0.0,
            "frames_dropped": float(self.stats.dropped),
            "keyframes": float(self.seg.counters.model_frames),
        }

    def _summary(self, wall_s: float, rss_start: float) -> dict[str, Any]:
        stats, info, seg, counters = self.stats, self.src.info, self.seg, self.seg.counters
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
        keyframes = seg.propagator.summary() if not seg.policy.per_frame else {
            "policy": "1", "keyframes": counters.model_frames, "propagated": 0, "reasons": {}
        }  # fmt: skip
        return {
            "source": asdict(info),
            "frames": {
                "read": stats.read,
                "processed": stats.processed,
                "dropped": stats.dropped,
                "written": stats.written,
                "expected": info.n_frames,
                "scene_cuts": counters.scene_cuts,
                "smoother_resets": counters.smoother_resets,
                "keyframes": keyframes["keyframes"],
                "model_calls_unused": counters.model_calls_unused,
                "flow_failures": keyframes["reasons"].get("flow_failed", 0),
            },
            "keyframes": keyframes,
            "performance": {
                "wall_s": round(wall_s, 3),
                "model_s": round(counters.model_s, 3),
                "fps_end_to_end": round(stats.written / wall_s, 2) if wall_s else None,
                "fps_model": round(counters.model_frames / counters.model_s, 2) if counters.model_s else None,
                "latency_ms_median": _percentile(latencies, 50),
                "latency_ms_p99": _percentile(latencies, 99),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "rss_growth_mb": round(_rss_mb() - rss_start, 1),
                **self.sizer.summary(),
                "threads": _thread_plan(self.src, self.torch_threads),
                "codec": self.outs.video.fourcc if self.outs.video is not None else None,
            },
            "stages": seg.stages.summary(),
            "consistency": {
                "tau": self.options.tau,
                "score_hw": list(seg.score_hw) if seg.score_hw else None,
                "flow_method": FLOW_METHOD,
                "metrics": self.metrics_mode,
                "metrics_skipped": stats.metrics_skipped,
                "raw": self.meters.raw.summary() if self.meters.raw is not None else None,
                "smoothed": self.meters.smoothed.summary(),
            },
            "warnings": warnings,
            "error": error,
        }


def model_threads(options: VideoOptions) -> int:
    """Threads for the model (`options.model_threads` when set): every core when it runs on every frame (it
    is the bottleneck) or live (the source's pace leaves cores idle, and a shorter keyframe call is lower
    latency: 720p30, B0 bf16, Zen 5, 2 vs 1 thread, two pairs: latency p50 184 / 217 vs 226 / 266 ms, p99
    337 / 342 vs 417 / 441 ms, 0 vs 1-2 frames dropped); one core less with keyframes offline, where decode,
    overlay and encode run beside it and OpenMP threads fighting them for the cores stall at every op (720p:
    29.3-29.8 FPS with 1 thread vs 26.0-28.8 with 2; 1080p: even, 20.9 / 24.0 vs 20.3 / 24.3)."""
    if options.model_threads:
        return options.model_threads
    cores = os.cpu_count() or 1
    return cores if options.keyframes.per_frame or options.mode == "live" else max(1, cores - 1)


def _percentile(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values.size else None


def _thread_plan(src: FrameSource, torch_threads: int) -> dict[str, int | None]:
    """How many threads each library was given during the run."""
    return {"opencv_per_call": 1, "decode": src.decode_threads, "torch": torch_threads}


class _Lookahead:
    """Frames decoded ahead of the main thread, and model calls started on them in one worker thread."""

    def __init__(self, q: queue.Queue, stop: threading.Event, live: bool, infer: Callable) -> None:
        self.q, self.stop, self.live, self.infer = q, stop, live, infer
        self.ahead: collections.deque[Frame] = collections.deque()
        self.calls: dict[int, cf.Future] = {}  # frame index -> its model call
        self.ended = False
        self.pool = cf.ThreadPoolExecutor(1, thread_name_prefix="segopt-model")

    def __enter__(self) -> _Lookahead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _fill(self, n: int) -> None:
        """At least n frames ahead, waiting for the reader (live: beyond the first, only those queued)."""
        while not self.ended and len(self.ahead) < n:
            item = _get_nowait(self.q) if self.live and self.ahead else _get(self.q, self.stop)
            if item is _NOTHING:
                return
            if item is _END:
                self.ended = True
            else:
                self.ahead.append(item)

    def next(self) -> Frame | None:
        """The next frame in order; None at the end of the stream."""
        self._fill(1)
        return self.ahead.popleft() if self.ahead else None

    def call(self, frame: Frame) -> cf.Future:
        """The model call on `frame` (started now unless it was started ahead)."""
        if frame.index not in self.calls:
            self.calls[frame.index] = self.pool.submit(self.infer, frame)
        return self.calls[frame.index]

    def call_ahead(self, n: int) -> None:
        """Start the model on the n-th frame after the current one (0: the next) once it is decoded."""
        self._fill(n + 1)
        if len(self.ahead) > n:
            self.call(self.ahead[n])

    def done(self, frame: Frame, used: bool) -> int:
        """Forget the calls up to `frame`; how many of them ran without being used."""
        unused = 0
        for index in [i for i in self.calls if i <= frame.index]:
            future = self.calls.pop(index)
            unused += not (used and index == frame.index) and not future.cancel()
        return unused


def _next_batch(q: queue.Queue, stop: threading.Event, n: int, live: bool) -> tuple[list[Frame], bool]:
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


def _split_by_size(items: list[Frame]) -> list[list[Frame]]:
    """Consecutive runs of frames with the same model input size (image sequences may change size)."""
    runs: list[list[Frame]] = []
    for item in items:
        if runs and runs[-1][-1].model_input.shape == item.model_input.shape:
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
    segmenter = Segmenter(
        predictor, spec, smoothing, options.keyframes, options.input_hw, options.input_short, StageTimes()
    )
    run = _Run(src, outs, segmenter, LabelStyle.from_spec(spec), style, options, gt)
    summary = run.execute(on_metrics)
    summary.update(
        options={
            "smoothing": asdict(smoothing),
            "overlay": asdict(style),
            "pipeline": {**asdict(options), "keyframes": options.keyframes.label},
            "keyframe_policy": asdict(options.keyframes),
        },
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
    reports_dir: str | Path | None = None,
    num_threads: int | None = None,
) -> tuple[Predictor, CellSpec]:
    """The predictor and cell spec of a checkpoint file or an optimized artifact folder (exactly one);
    artifact `auto` is the one the latest optimize-all report under `reports_dir` recommends at batch 1."""
    if (checkpoint is None) == (artifact is None):
        raise VideoError("pass exactly one of --checkpoint PATH or --artifact DIR")
    if artifact is not None and str(artifact) == "auto":
        from segopt_core.settings import load_settings
        from segopt_core.video.recommended import recommended_artifact

        artifact, variant = recommended_artifact(reports_dir or load_settings().reports_dir, cell)
        log.info("--artifact auto: %s (%s)", artifact, variant)
        cell = None  # the cell chose the report row; the artifact's own stored spec describes it
    if checkpoint is not None:
        from segopt_core.checkpoints import load_checkpoint
        from segopt_core.predictor import TorchPredictor

        loaded = load_checkpoint(checkpoint, cell)
        return TorchPredictor(loaded.model, device=device), loaded.spec
    from segopt_core.backends import ArtifactError, BackendUnavailable, load_predictor

    try:
        return load_predictor(artifact, num_threads=num_threads), _artifact_spec(Path(artifact), cell)
    except (ArtifactError, BackendUnavailable) as exc:
        raise VideoError(f"artifact {artifact}: {exc}") from exc


def _artifact_spec(artifact: Path, cell: str | None) -> CellSpec:
    """The cell of an artifact: --cell when given, else the spec stored in its metadata."""
    from segopt_core.backends import read_metadata
    from segopt_core.backends.source import spec_from_dict
    from segopt_core.variants import get_cell

    return get_cell(cell) if cell else spec_from_dict(read_metadata(artifact)["spec"])
