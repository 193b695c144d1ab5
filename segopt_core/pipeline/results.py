"""Turn per-variant records (build + benchmark + accuracy) into result rows, with speedups and the gate."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from segopt_core.backends.options import REFERENCE_VARIANT
from segopt_core.benchmark.paired import speedup_columns
from segopt_core.pipeline.gate import AccuracyGate
from segopt_core.pipeline.record import VariantRecord
from segopt_core.reports.schema import COLUMN_NAMES, result_row

ACCURACY_MEASURES = {"labels": "miou_ratio", "agreement": "miou_vs_fp32"}  # what miou_ratio is, per mode
_TIMING_KEYS = (
    "started_at",
    "finished_at",
    "build_seconds",
    "build_wait_seconds",
    "artifact_build_seconds",
    "benchmark_seconds",
    "eval_seconds",
)
_MACHINE_KEYS = ("hostname", "cpu_model", "cpu_logical_cores", "gpu_name")


def machine_id(fingerprint: Mapping[str, Any]) -> str:
    """Short hash of the hardware part of a fingerprint: rows of the same machine share it across upgrades."""
    payload = json.dumps({k: fingerprint.get(k) for k in _MACHINE_KEYS}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _is_reference(record: VariantRecord) -> bool:
    return record.variant == REFERENCE_VARIANT.slug and record.ok


def _references(records: Iterable[VariantRecord]) -> dict[str, VariantRecord]:
    """The torch fp32 record of each checkpoint, by checkpoint sha256."""
    refs: dict[str, VariantRecord] = {}
    for record in records:
        if _is_reference(record):
            refs.setdefault(record.checkpoint_sha256, record)
    return refs


def accuracy_columns(
    accuracy: Mapping[str, Any] | None, reference: VariantRecord | None, gate: AccuracyGate
) -> dict[str, Any]:
    """The accuracy columns of a variant: ratio to fp32, per-class IoU deltas and the gate's verdict."""
    if not accuracy:
        return {"eval_mode": "none", "accepted": None, "gate": "not evaluated"}
    if accuracy.get("error"):
        return {"eval_mode": "none", "accepted": None, "gate": f"evaluation failed: {accuracy['error']}"}
    mode = accuracy["eval_mode"]
    cols: dict[str, Any] = {k: accuracy.get(k) for k in ("eval_mode", "eval_images", "miou")}
    cols["pixel_agreement"] = accuracy.get("pixel_agreement")
    cols["miou_vs_reference"] = accuracy.get("miou_vs_reference")
    ratio = None
    if mode == "agreement":
        ratio = accuracy.get("miou_vs_reference")
    elif mode == "labels" and reference and reference.accuracy:
        ref = reference.accuracy
        cols["miou_reference"] = ref["miou"]
        ratio = accuracy["miou"] / ref["miou"] if ref["miou"] else None
        mine, theirs = accuracy.get("per_class_iou") or {}, ref.get("per_class_iou") or {}
        both = [c for c in mine if mine[c] is not None and theirs.get(c) is not None]
        deltas = {c: round(mine[c] - theirs[c], 6) for c in both}
        cols["per_class_iou_delta"] = json.dumps(deltas)
    cols["miou_ratio"] = None if ratio is None else round(ratio, 6)
    cols["accuracy_measure"] = "" if ratio is None else ACCURACY_MEASURES[mode]
    cols["accepted"], cols["gate"] = gate.decide(cols["miou_ratio"])
    return cols


def record_rows(
    record: VariantRecord,
    run: Mapping[str, Any],
    reference: VariantRecord | None,
    gate: AccuracyGate,
) -> list[dict[str, Any]]:
    """Result rows of one variant record: one per benchmarked batch size, or one status row if none."""
    base = {
        **{k: v for k, v in run.items() if k in COLUMN_NAMES},
        "checkpoint": record.checkpoint,
        "checkpoint_sha256": record.checkpoint_sha256,
        "cell": record.cell,
        "backend": record.backend,
        "precision": record.precision,
        "variant": record.variant,
        "options": json.dumps(record.options, sort_keys=True),
        "cache_key": record.cache_key,
        "artifact": record.artifact,
        "reused": record.reused,
        **{k: getattr(record, k) for k in _TIMING_KEYS},
        "status": record.status,
        "error": record.error,
    }
    if not record.ok:
        return [result_row(**base)]
    if (record.accuracy or {}).get("error"):  # measured but not verified: not a usable variant
        base["status"], base["error"] = "failed", f"evaluation failed: {record.accuracy['error']}"
    accuracy = accuracy_columns(record.accuracy, reference, gate)
    ref_speed = {r["batch_size"]: r.get("throughput_ips") for r in reference.bench_rows} if reference else {}
    rows = []
    for bench in record.bench_rows:
        values = {k: v for k, v in bench.items() if k in COLUMN_NAMES}
        values.update(base)
        values.update(accuracy)
        if bench.get("status") not in (None, "ok"):  # e.g. an OOM at one batch size
            values["status"], values["error"] = bench["status"], bench.get("error") or ""
        values.update(speedup_columns(bench, ref_speed.get(bench.get("batch_size"))))
        rows.append(result_row(**values))
    return rows


def records_to_rows(
    records: list[VariantRecord], run: Mapping[str, Any], gate: AccuracyGate
) -> list[dict[str, Any]]:
    """All result rows of a flow run, in a stable order (checkpoint, variant, batch size)."""
    refs = _references(records)
    rows = []
    for record in sorted(records, key=lambda r: (r.checkpoint, r.variant)):
        rows += record_rows(record, run, refs.get(record.checkpoint_sha256), gate)
    return rows
