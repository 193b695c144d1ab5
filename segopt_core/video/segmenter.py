"""From frames to score-resolution label maps: per-frame batched inference with temporal smoothing, or
keyframes with motion-compensated propagation between them."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from segopt_core.predictor import Predictor
from segopt_core.variants import CellSpec
from segopt_core.video.keyframes import KeyframePolicy, Propagated, Propagator
from segopt_core.video.smoothing import SmoothingOptions, TemporalSmoother, argmax_labels
from segopt_core.video.sources import VideoError
from segopt_core.video.stages import StageTimes


def model_input_size(frame_hw: tuple[int, int], short: int) -> tuple[int, int]:
    """Keep-aspect size whose short side is `short`, each side rounded to a multiple of 32 (≥ 32)."""
    scale = short / min(frame_hw)
    return tuple(max(32, int(round(side * scale / 32)) * 32) for side in frame_hw)  # type: ignore[return-value]


def normalize(image: np.ndarray, spec: CellSpec) -> np.ndarray:
    """HxWx3 uint8 RGB -> float32 (3, H, W), bit-identical to `preprocess` without its temporaries."""
    out = np.empty((3, *image.shape[:2]), np.float32)
    for c in range(3):
        np.subtract(image[:, :, c], np.float32(spec.mean[c]), out=out[c], dtype=np.float32)
        np.divide(out[c], np.float32(spec.std[c]), out=out[c])
    return out


def prepare_batch(frames: list[np.ndarray], input_hw: tuple[int, int], spec: CellSpec) -> np.ndarray:
    """Resize RGB frames to the model input size and normalize: float32 (N, 3, h, w)."""
    return np.stack([normalize(resize_frame(f, input_hw), spec) for f in frames])


def resize_frame(frame: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """The frame at the model input size (bilinear; unchanged when already that size)."""
    h, w = input_hw
    return frame if frame.shape[:2] == input_hw else cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)


def small_gray(frame: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """The frame as uint8 grayscale at the score resolution (area-averaged, which also damps noise)."""
    return cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (hw[1], hw[0]), interpolation=cv2.INTER_AREA)


@dataclass
class Frame:
    """One decoded frame on its way through the pipeline."""

    index: int
    image: np.ndarray  # the full-resolution RGB frame (overlay, output)
    arrival: float  # perf_counter when it was decoded (latency starts here)
    model_input: np.ndarray  # resized RGB uint8 (propagation) or normalized float32 (3, h, w) (per-frame)
    gray: np.ndarray  # uint8 at score resolution: scene cuts, flow, metrics
    scene_cut: bool = False


class BatchSizer:
    """The batch size from measured per-image cost: trial calls at 1 (the first warms up), 1, 2 and 4, then
    the cheapest per image; a fixed size when given, 1 in live mode (latency first)."""

    TRIALS = (1, 1, 2, 4)

    def __init__(self, fixed: int | None, live: bool) -> None:
        self.fixed = 1 if fixed is None and live else fixed
        self.per_image_ms: dict[int, float] = {}
        self.chosen: int | None = self.fixed
        self._trial = 0

    def next_size(self) -> int:
        """How many frames the next model call should take."""
        return self.chosen or self.TRIALS[self._trial]

    def record(self, size: int, seconds: float) -> None:
        """A finished call of `size` frames (a short last batch is not a measurement)."""
        if self.chosen is not None or size != self.TRIALS[self._trial]:
            return
        if self._trial > 0:  # the first call pays for warm-up (allocator, lazy init, compiled kernels)
            per_image = round(seconds * 1000 / size, 2)
            self.per_image_ms[size] = min(self.per_image_ms.get(size, per_image), per_image)
        self._trial += 1
        if self._trial == len(self.TRIALS):
            self.chosen = min(self.per_image_ms, key=lambda n: (self.per_image_ms[n], n))

    def failed(self) -> None:
        """A trial batch > 1 failed (e.g. a fixed-batch artifact): batch 1 from now on."""
        self.chosen = 1

    def summary(self) -> dict[str, object]:
        """Chosen size, how (fixed / measured) and the measured per-image cost."""
        return {
            "batch_size": self.chosen,
            "chosen_by": "fixed" if self.fixed else "measured per-image cost",
            "per_image_ms": {str(k): v for k, v in sorted(self.per_image_ms.items())},
        }


@dataclass
class Counters:
    """Model calls and frames; the model's by the thread that calls it, the others by the main thread."""

    model_frames: int = 0
    model_s: float = 0.0
    model_calls_unused: int = 0  # keyframe policies: calls made ahead for a frame that was propagated
    scene_cuts: int = 0
    smoother_resets: int = 0


class Segmenter:
    """Frames to label maps. Per-frame policy: the model on every frame (batched), then the EMA smoother.
    Other policies: the model on keyframes only, propagation in between (`Propagator`)."""

    def __init__(
        self,
        predictor: Predictor,
        spec: CellSpec,
        smoothing: SmoothingOptions,
        policy: KeyframePolicy,
        input_hw: tuple[int, int] | None,
        input_short: int | None,
        stages: StageTimes,
    ) -> None:
        self.predictor, self.spec, self.smoothing, self.policy = predictor, spec, smoothing, policy
        self.input_hw, self.input_short, self.stages = input_hw, input_short, stages
        self.smoother = TemporalSmoother(smoothing)
        self.propagator = Propagator(policy, smoothing)
        self.counters = Counters()
        self.score_hw: tuple[int, int] | None = None
        self._prev_gray: np.ndarray | None = None

    def input_size(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """The model input size for frames of this size."""
        if self.input_hw:
            return self.input_hw
        return model_input_size(frame_hw, self.input_short or min(self.spec.crop_size))

    def prepare(self, index: int, image: np.ndarray, arrival: float) -> Frame:
        """Reader thread: resize to the model input (normalized too for per-frame inference), small gray."""
        with self.stages.measure("resize"):
            hw = self.input_size(image.shape[:2])
            resized = resize_frame(image, hw)
            gray = small_gray(resized, (hw[0] // 4, hw[1] // 4))
            model_input = normalize(resized, self.spec) if self.policy.per_frame else resized
        return Frame(index, image, arrival, model_input, gray)

    def mark_scene_cut(self, frame: Frame) -> None:
        """Main thread: flag a cut against the previous processed frame (mean |Δgray| over the threshold)."""
        prev, self._prev_gray = self._prev_gray, frame.gray
        if prev is not None and prev.shape == frame.gray.shape:
            frame.scene_cut = float(cv2.absdiff(prev, frame.gray).mean()) > self.smoothing.scene_cut_threshold
            self.counters.scene_cuts += frame.scene_cut

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, h, w) float32 logits; VideoError naming the predictor and the batch shape on failure."""
        with self.stages.measure("model", len(batch)):
            try:
                logits = np.asarray(self.predictor(batch), dtype=np.float32)
            except Exception as exc:
                raise VideoError(
                    f"predictor {getattr(self.predictor, 'name', '?')}: failed on a batch of shape "
                    f"{batch.shape} ({type(exc).__name__}: {exc}); for a fixed-shape artifact pass its input "
                    "size (--input-size HxW)"
                ) from exc
        self.counters.model_frames += len(batch)
        self.counters.model_s += self.stages.wall_ms["model"][-1] * len(batch) / 1000
        self.score_hw = logits.shape[2:]
        return logits

    def smooth(self, frame: Frame, logits: np.ndarray, raw: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Per-frame policy (overlay thread): (smoothed labels, raw labels when asked) at score resolution."""
        with self.stages.measure("smoothing"):
            if self.smoothing.alpha == 0:
                labels = argmax_labels(logits)
                return labels, labels
            resets = self.smoother.resets
            scores = self.smoother.update(logits, frame.gray)
            self.counters.smoother_resets += self.smoother.resets - resets
            return argmax_labels(scores), argmax_labels(logits) if raw else None

    def step(self, frame: Frame) -> np.ndarray:
        """Keyframe policies: the frame's labels, propagated or from a model call (in this thread)."""
        outcome = self.propagate(frame)
        if outcome.labels is not None:
            return outcome.labels
        return self.keyframe(frame, self.infer(frame), outcome)

    def propagate(self, frame: Frame) -> Propagated:
        """Keyframe policies (main thread): labels warped from the last keyframe, or why the model runs."""
        with self.stages.measure("propagation"):
            return self.propagator.propagate(frame.gray, frame.scene_cut)

    def infer(self, frame: Frame) -> np.ndarray:
        """Keyframe policies: the (C, h, w) logits of one frame (any thread; the model worker's)."""
        with self.stages.measure("resize"):
            batch = normalize(frame.model_input, self.spec)[None]
        return self.predict(batch)[0]

    def keyframe(self, frame: Frame, logits: np.ndarray, outcome: Propagated) -> np.ndarray:
        """Keyframe policies (main thread): the keyframe's labels from its logits; they become the scores
        later frames are warped from."""
        with self.stages.measure("smoothing"):
            self.counters.smoother_resets += outcome.reason == "scene_cut"
            _, labels = self.propagator.keyframe(logits, frame.gray, outcome)
        return labels
