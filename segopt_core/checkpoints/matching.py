"""Match a checkpoint to its cell: from the weights first, from names and configs second.

Weights decide the encoder (widths + depths -> B0..B5), the decoder width and the classes (150 -> ADE20K,
19 -> Cityscapes). Names and configs add what weights cannot hold (resolution, attention heads) and break
ties (the dataset of a custom class count). Every disagreement is recorded as a warning naming the choice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from segopt_core.checkpoints.formats import Arch, CheckpointError
from segopt_core.variants import (
    CELLS,
    DATASETS,
    DECODER_HIDDEN_SIZE,
    ENCODERS,
    CellSpec,
    EncoderSpec,
    custom_cell,
    get_cell,
    make_cell,
)

_STANDARD_HEADS = (1, 2, 5, 8)
_DATASET_OF_CLASSES = {d.num_classes: name for name, d in DATASETS.items()}


@dataclass(frozen=True)
class Hints:
    """What a name or a config says about a checkpoint (None where it says nothing)."""

    source: str
    encoder: str | None = None
    resolution: int | None = None
    dataset: str | None = None
    num_heads: tuple[int, ...] | None = None
    cell: str | None = None
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.dataset is not None and self.dataset not in DATASETS:
            raise ValueError(f"hints from {self.source}: unknown dataset {self.dataset!r}")

    def says_anything(self) -> bool:
        """True when any field is set."""
        return any(
            v is not None for v in (self.encoder, self.resolution, self.dataset, self.num_heads, self.cell)
        )


@dataclass(frozen=True)
class CellMatch:
    """The cell a checkpoint was matched to, why, and every conflict or assumption on the way."""

    cell: str
    spec: CellSpec
    custom: bool
    evidence: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.cell != self.spec.name:
            raise ValueError(f"CellMatch: cell {self.cell!r} differs from its spec's name {self.spec.name!r}")

    @property
    def conflicts(self) -> tuple[str, ...]:
        """The warnings where a name or config said one thing and the weights another (every such warning
        reads "<source> says ..."): what a user must hear about, unlike stated assumptions."""
        return tuple(w for w in self.warnings if " says " in w)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {
            "cell": self.cell,
            "custom": self.custom,
            "evidence": list(self.evidence),
            "warnings": list(self.warnings),
        }


_ENC_RE = re.compile(r"(?:^|[^a-z0-9])(?:mit[-_]?)?b([0-5])(?=[^a-z0-9]|$)")
_RES_RE = re.compile(r"(?:^|[^0-9])(\d{2,4})x(\d{2,4})(?=[^0-9]|$)|-(\d{2,4})-(\d{2,4})(?=[^0-9]|$)")
_DATASET_RES = {
    "ade20k": re.compile(r"(?:^|[^a-z])ade(?:20k)?(?=[^a-z]|$)"),
    "cityscapes": re.compile(r"(?:^|[^a-z])city(?:scapes)?(?=[^a-z]|$)"),
}


def hints_from_name(name: str, source: str = "name") -> Hints:
    """Parse release-style names: 'segformer.b2.512x512.ade.160k', 'segformer_mit-b0_8x1_1024x1024_...',
    'segformer-b5-finetuned-ade-640-640'."""
    text = name.lower()
    enc = _ENC_RE.search(text)
    res = _RES_RE.search(text)
    datasets = [d for d, pattern in _DATASET_RES.items() if pattern.search(text)]
    resolution = None
    if res:
        resolution = int(res.group(1) or res.group(3))
    return Hints(
        source=f"{source} {name!r}",
        encoder=f"b{enc.group(1)}" if enc else None,
        resolution=resolution if resolution and resolution >= 32 else None,
        dataset=datasets[0] if len(datasets) == 1 else None,
    )


def dataset_from_class_names(names: list[str] | tuple[str, ...] | None) -> str | None:
    """'ade20k'/'cityscapes' when most class names equal that dataset's, else None."""
    if not names:
        return None
    cleaned = [str(n).strip().lower() for n in names]
    for dname, data in DATASETS.items():
        if len(cleaned) == data.num_classes:
            same = sum(
                a == b.lower() or a.split(",")[0] == b.lower()
                for a, b in zip(cleaned, data.class_names, strict=True)
            )
            if same >= 0.8 * data.num_classes:
                return dname
    return None


def hints_from_hf_config(config: dict[str, Any], source: str = "config.json") -> list[Hints]:
    """Hints from an HF config.json: heads, class names and the hub name it was saved from."""
    from segopt_core.checkpoints.hf import heads_from_hf_config

    id2label = config.get("id2label") or {}
    names = tuple(str(id2label[k]) for k in sorted(id2label, key=lambda k: int(k))) if id2label else None
    hints = [
        Hints(
            source,
            num_heads=heads_from_hf_config(config),
            dataset=dataset_from_class_names(names),
            class_names=names,
        )
    ]
    origin = config.get("_name_or_path")
    if isinstance(origin, str) and origin:
        hints.append(hints_from_name(origin.rstrip("/").split("/")[-1], source=f"{source} _name_or_path"))
    return hints


def hints_from_segopt(info: dict[str, Any], source: str = "segopt.json") -> Hints:
    """Hints from segopt metadata (segopt.json of a trained folder, or write_checkpoint's embedded info)."""
    crop = info.get("crop_size") or info.get("resolution")
    resolution = int(crop[0] if isinstance(crop, list | tuple) else crop) if crop else None
    heads = info.get("num_heads")
    names = info.get("class_names")
    dataset = info.get("dataset") if info.get("dataset") in DATASETS else dataset_from_class_names(names)
    cell = info.get("cell") if isinstance(info.get("cell"), str) else None
    if cell and cell in CELLS and resolution is None:
        resolution = CELLS[cell].resolution
    return Hints(
        source=source,
        encoder=info.get("encoder")
        if info.get("encoder") in ENCODERS
        else (cell.split("-")[0] if cell and cell in CELLS else None),
        resolution=resolution,
        dataset=dataset or (CELLS[cell].dataset.name if cell in CELLS else None),
        num_heads=tuple(heads) if isinstance(heads, list | tuple) and len(heads) == 4 else None,
        cell=cell,
        class_names=tuple(names) if isinstance(names, list | tuple) else None,
    )


def hints_from_mmseg_meta(meta: dict[str, Any], source: str = "checkpoint meta") -> Hints:
    """Hints from an mmseg checkpoint's 'meta' (its config text and class names)."""
    text = meta.get("config") if isinstance(meta.get("config"), str) else ""
    crop = re.search(r"crop_size\s*=\s*\(\s*(\d+)\s*,\s*(\d+)", text)
    heads = re.search(r"num_heads\s*=\s*\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)", text)
    dataset = "ade20k" if "ADE20KDataset" in text else "cityscapes" if "CityscapesDataset" in text else None
    names = meta.get("CLASSES") or (meta.get("dataset_meta") or {}).get("classes")
    return Hints(
        source=source,
        resolution=int(crop.group(1)) if crop else None,
        dataset=dataset or dataset_from_class_names(names),
        num_heads=tuple(int(h) for h in heads.groups()) if heads else None,
        class_names=tuple(names) if isinstance(names, list | tuple) else None,
    )


@dataclass
class _Decision:
    evidence: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _first(hints: list[Hints], attr: str) -> tuple[Any, Hints | None]:
    for hint in hints:
        if getattr(hint, attr) is not None:
            return getattr(hint, attr), hint
    return None, None


def _matrix_encoder(arch: Arch) -> str | None:
    for name, enc in ENCODERS.items():
        same = (enc.hidden_sizes, enc.depths, enc.sr_ratios, enc.patch_sizes, enc.mlp_ratios) == (
            arch.hidden_sizes,
            arch.depths,
            arch.sr_ratios,
            arch.patch_sizes,
            arch.mlp_ratios,
        )
        if same:
            return name
    return None


def _decide_encoder(arch: Arch, hints: list[Hints], d: _Decision) -> tuple[EncoderSpec, str | None]:
    name = _matrix_encoder(arch)
    named, hint = _first(hints, "encoder")
    heads, heads_hint = _first(hints, "num_heads")
    if name:
        d.evidence.append(f"weights: {arch.describe_encoder()} = MiT-{name.upper()}")
        if named and named != name:
            d.warnings.append(
                f"{hint.source} says {named.upper()} but the weights are {name.upper()}: chose {name.upper()}"
            )
        if heads is None or tuple(heads) == ENCODERS[name].num_heads:
            return ENCODERS[name], name
        d.warnings.append(
            f"{heads_hint.source} gives num_heads {list(heads)} (MiT-{name.upper()} has "
            f"{list(ENCODERS[name].num_heads)}): custom encoder"
        )
    else:
        d.evidence.append(f"weights: {arch.describe_encoder()} (no B0..B5 has these shapes)")
        if named:
            d.warnings.append(
                f"{hint.source} says {named.upper()} but the weights fit no B0..B5: custom encoder"
            )
    if heads is None:
        heads = tuple(h if w % h == 0 else 1 for w, h in zip(arch.hidden_sizes, _STANDARD_HEADS, strict=True))
        d.warnings.append(f"attention heads are not in the weights nor a config: assumed {list(heads)}")
    else:
        d.evidence.append(f"{heads_hint.source}: num_heads {list(heads)}")
    enc_name = "custom" if not name else f"{name}-custom"
    for hint in hints:
        if hint.cell and not hint.cell.startswith("b"):
            enc_name = hint.cell.split("-")[0]  # e.g. 'tiny' from 'tiny-64-ade20k'
    spec = EncoderSpec(
        enc_name,
        arch.hidden_sizes,
        arch.depths,
        tuple(heads),
        arch.sr_ratios,
        arch.patch_sizes,
        mlp_ratios=arch.mlp_ratios,
    )
    return spec, None


def _decide_dataset(arch: Arch, hints: list[Hints], d: _Decision) -> str:
    from_weights = _DATASET_OF_CLASSES.get(arch.num_labels)
    said, hint = _first(hints, "dataset")
    if from_weights:
        d.evidence.append(f"weights: {arch.num_labels} classes = {from_weights}")
        if said and said != from_weights:
            d.warnings.append(
                f"{hint.source} says {said} but the classifier has {arch.num_labels} rows: "
                f"chose {from_weights}"
            )
        return from_weights
    choice = said or "ade20k"
    basis = (
        f"dataset {said} from {hint.source}" if said else "no dataset in name/config, ADE20K settings assumed"
    )
    d.warnings.append(
        f"{arch.num_labels} classes fit no dataset (ADE20K 150, Cityscapes 19): custom cell with "
        f"{arch.num_labels} classes; {basis}"
    )
    return choice


def _default_resolution(encoder: str | None, dataset: str) -> int:
    if dataset == "cityscapes":
        return 1024
    return 640 if encoder == "b5" else 512


def _decide_resolution(enc_name: str | None, dataset: str, hints: list[Hints], d: _Decision) -> int:
    res, hint = _first(hints, "resolution")
    matrix = [
        c.resolution for c in CELLS.values() if c.encoder.name == enc_name and c.dataset.name == dataset
    ]
    if res is None:
        res = _default_resolution(enc_name, dataset)
        d.evidence.append(f"resolution {res}: not in the weights, name or config; {dataset} default")
        return res
    d.evidence.append(f"{hint.source}: resolution {res}")
    if matrix and res not in matrix:
        d.warnings.append(
            # not a conflict with the weights (they fix no resolution): a stated choice, not a console warning
            f"{hint.source}: resolution {res} while the matrix has {enc_name.upper()} {dataset} at "
            f"{matrix[0]}: kept {res} (custom cell); "
            f"pass cell {enc_name}-{matrix[0]}-{dataset} to use the matrix cell"
        )
    return res


def match_cell(arch: Arch, hints: list[Hints]) -> CellMatch:
    """The cell for weights of this architecture, hints ordered strongest first (configs, then names)."""
    d = _Decision()
    encoder, enc_name = _decide_encoder(arch, hints, d)
    dataset = _decide_dataset(arch, hints, d)
    resolution = _decide_resolution(enc_name, dataset, hints, d)
    standard_decoder = DECODER_HIDDEN_SIZE.get(enc_name or "", None)
    if standard_decoder is not None and arch.decoder_hidden_size != standard_decoder:
        d.warnings.append(
            f"decoder width {arch.decoder_hidden_size} differs from {enc_name.upper()}'s "
            f"{standard_decoder}: custom cell"
        )
    if arch.head == "mmseg":
        d.evidence.append("head: MMSegmentation SegformerHead (per-stage ConvModule)")
    matrix_name = f"{enc_name}-{resolution}-{dataset}"
    exact = (
        enc_name is not None
        and matrix_name in CELLS
        and arch.decoder_hidden_size == standard_decoder
        and arch.num_labels == DATASETS[dataset].num_classes
    )
    if exact:
        return CellMatch(matrix_name, CELLS[matrix_name], False, tuple(d.evidence), tuple(d.warnings))
    spec = _custom_spec(arch, encoder, enc_name, resolution, dataset, hints)
    return CellMatch(spec.name, spec, True, tuple(d.evidence), tuple(d.warnings))


def _custom_spec(
    arch: Arch, encoder: EncoderSpec, enc_name: str | None, res: int, dataset: str, hints: list[Hints]
) -> CellSpec:
    base = make_cell(enc_name or "b0", res, dataset)
    given, _ = _first(hints, "cell")
    extra = f"-{arch.num_labels}cls" if arch.num_labels != DATASETS[dataset].num_classes else ""
    name = given if given and given not in CELLS else f"{enc_name or 'custom'}-{res}-{dataset}{extra}-custom"
    return custom_cell(
        base,
        encoder=encoder,
        decoder_hidden_size=arch.decoder_hidden_size,
        num_labels=arch.num_labels,
        crop_size=(res, res),
        name=name,
    )


def match_given_cell(arch: Arch, cell: str | CellSpec, source: object) -> CellMatch:
    """Accept a cell the user named, after checking the weights fit it (CheckpointError otherwise)."""
    spec = get_cell(cell) if isinstance(cell, str) else cell
    enc = spec.encoder
    fits = (
        (enc.hidden_sizes, enc.depths, enc.sr_ratios, enc.patch_sizes)
        == (arch.hidden_sizes, arch.depths, arch.sr_ratios, arch.patch_sizes)
        and spec.decoder_hidden_size == arch.decoder_hidden_size
        and spec.num_classes == arch.num_labels
    )
    if not fits:
        raise CheckpointError(
            f"{source}: weights are {arch.describe()} but cell {spec.name!r} expects widths "
            f"{'/'.join(map(str, enc.hidden_sizes))}, depths {'/'.join(map(str, enc.depths))}, decoder "
            f"{spec.decoder_hidden_size}, {spec.num_classes} classes; omit the cell to match from the weights"
        )
    return CellMatch(
        spec.name, spec, spec.custom, (f"cell {spec.name} given by the user; weights fit it",), ()
    )
