"""Cell matching: weights first, names and configs second, every conflict stated."""

from __future__ import annotations

import pytest

from segopt_core.checkpoints import Arch, hints_from_name
from segopt_core.checkpoints.matching import hints_from_hf_config, hints_from_mmseg_meta, match_cell
from segopt_core.variants import CELLS, DECODER_HIDDEN_SIZE, ENCODERS


def arch_of(encoder: str, classes: int, decoder: int | None = None, head: str = "hf") -> Arch:
    enc = ENCODERS[encoder]
    return Arch(
        enc.hidden_sizes,
        enc.depths,
        enc.sr_ratios,
        enc.patch_sizes,
        enc.mlp_ratios,
        decoder or DECODER_HIDDEN_SIZE[encoder],
        classes,
        head,
    )


@pytest.mark.parametrize(
    ("name", "encoder", "resolution", "dataset"),
    [
        ("segformer.b2.512x512.ade.160k", "b2", 512, "ade20k"),
        ("segformer_mit-b2_512x512_160k_ade20k_20220620_114047-64e4feca", "b2", 512, "ade20k"),
        ("segformer_mit-b0_8x1_1024x1024_160k_cityscapes_20211208_101857-e7f88502", "b0", 1024, "cityscapes"),
        ("segformer-b5-finetuned-ade-640-640", "b5", 640, "ade20k"),
        ("segformer-b1-finetuned-cityscapes-1024-1024", "b1", 1024, "cityscapes"),
        ("my_upgrade_weights", None, None, None),
    ],
)
def test_release_names_are_parsed(name, encoder, resolution, dataset):
    hints = hints_from_name(name)
    assert (hints.encoder, hints.resolution, hints.dataset) == (encoder, resolution, dataset)


def test_matrix_cell_from_weights_and_name():
    match = match_cell(arch_of("b2", 150), [hints_from_name("segformer.b2.512x512.ade.160k")])
    assert match.cell == "b2-512-ade20k" and match.spec is CELLS["b2-512-ade20k"]
    assert not match.custom and not match.warnings


def test_weights_beat_a_wrong_name():
    match = match_cell(arch_of("b1", 150), [hints_from_name("segformer.b0.512x512.ade.160k")])
    assert match.cell == "b1-512-ade20k"
    assert any("says B0 but the weights are B1" in w for w in match.warnings)


def test_b5_ade_named_512_is_flagged_against_the_matrix_640():
    match = match_cell(arch_of("b5", 150), [hints_from_name("segformer_mit-b5_512x512_160k_ade20k")])
    assert match.custom and match.spec.resolution == 512 and match.cell == "b5-512-ade20k-custom"
    assert any("matrix has B5 ade20k at 640" in w for w in match.warnings)


def test_resolution_defaults_to_the_dataset_and_says_so():
    match = match_cell(arch_of("b5", 150), [])
    assert match.cell == "b5-640-ade20k"
    assert any("ade20k default" in e for e in match.evidence)
    assert match_cell(arch_of("b3", 19), []).cell == "b3-1024-cityscapes"


def test_class_count_of_no_dataset_gives_a_custom_cell():
    match = match_cell(arch_of("b0", 21), [hints_from_name("segformer.b0.512x512.voc")])
    assert match.custom and match.spec.num_classes == 21
    assert any("21 classes fit no dataset" in w for w in match.warnings)


def test_dataset_in_name_loses_to_classifier_rows():
    match = match_cell(arch_of("b2", 19), [hints_from_name("segformer.b2.1024x1024.ade.160k")])
    assert match.spec.dataset.name == "cityscapes"
    assert any("classifier has 19 rows" in w for w in match.warnings)


def test_non_standard_decoder_width_is_custom():
    match = match_cell(arch_of("b0", 150, decoder=768), [])
    assert match.custom and match.spec.decoder_hidden_size == 768
    assert any("decoder width 768" in w for w in match.warnings)


def test_configs_give_heads_and_class_names():
    config = {
        "num_attention_heads": [1, 2, 5, 8],
        "id2label": {"0": "road", "1": "x"},
        "_name_or_path": "nvidia/segformer-b0-finetuned-ade-512-512",
    }
    own, origin = hints_from_hf_config(config)
    assert own.num_heads == (1, 2, 5, 8) and origin.encoder == "b0" and origin.resolution == 512
    meta = hints_from_mmseg_meta(
        {"config": "dataset_type = 'CityscapesDataset'\ncrop_size = (1024, 1024)\nnum_heads=[1, 2, 5, 8]"}
    )
    assert (meta.dataset, meta.resolution, meta.num_heads) == ("cityscapes", 1024, (1, 2, 5, 8))
