from __future__ import annotations

import pytest
import torch

from segopt_core.models import build_hf_model, build_model, hf_config
from segopt_core.variants import CELLS, ENCODERS, EncoderSpec, get_cell, select_cells, tiny_cell


def test_matrix_has_the_eleven_cells():
    assert sorted(CELLS) == sorted(
        [
            "b0-512-ade20k", "b0-1024-cityscapes", "b1-512-ade20k", "b2-512-ade20k", "b2-1024-cityscapes",
            "b3-512-ade20k", "b3-1024-cityscapes", "b4-512-ade20k", "b4-1024-cityscapes", "b5-640-ade20k",
            "b5-1024-cityscapes",
        ]
    )  # fmt: skip


@pytest.mark.parametrize("name", list(CELLS))
def test_cell_config_produces_matching_shapes(name):
    """Each cell's config builds (on the meta device) an encoder/decoder with the spec's shapes."""
    spec = get_cell(name)
    with torch.device("meta"):
        from transformers import SegformerForSemanticSegmentation

        model = SegformerForSemanticSegmentation(hf_config(spec))
    sd = model.state_dict()
    for stage, width in enumerate(spec.encoder.hidden_sizes):
        assert sd[f"segformer.stages.{stage}.patch_embeddings.proj.weight"].shape[0] == width
        blocks = {k.split(".")[4] for k in sd if k.startswith(f"segformer.stages.{stage}.blocks.")}
        assert len(blocks) == spec.encoder.depths[stage]
    assert sd["decode_head.linear_fuse.weight"].shape[0] == spec.decoder_hidden_size
    assert sd["decode_head.classifier.weight"].shape[0] == spec.num_classes


def test_cell_facts():
    assert get_cell("b0-512-ade20k").num_classes == 150
    assert get_cell("b0-512-ade20k").dataset.reduce_zero_label
    assert get_cell("b2-1024-cityscapes").num_classes == 19
    assert get_cell("b2-1024-cityscapes").inference_mode == "slide"
    assert get_cell("b2-1024-cityscapes").slide_stride == (768, 768)
    assert get_cell("b5-640-ade20k").test_scale == (2048, 640)
    assert get_cell("b1-512-ade20k").decoder_hidden_size == 256
    assert get_cell("b2-512-ade20k").decoder_hidden_size == 768
    assert ENCODERS["b0"].hidden_sizes == (32, 64, 160, 256)


def test_unknown_cell_lists_valid_names():
    with pytest.raises(KeyError, match="b0-512-ade20k"):
        get_cell("b9-512-ade20k")
    with pytest.raises(KeyError):
        select_cells(["nope"])
    assert [c.name for c in select_cells(["b0"])] == ["b0-512-ade20k", "b0-1024-cityscapes"]


def test_bad_encoder_rejected():
    with pytest.raises(ValueError, match="divisible"):
        EncoderSpec("x", hidden_sizes=(8, 8, 16, 15), depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2))


def test_tiny_model_forward(tiny_spec):
    model = build_model(tiny_spec)
    with torch.no_grad():
        logits = model(torch.zeros(2, 3, 64, 64))
    assert logits.shape == (2, 150, 16, 16)
    assert build_hf_model(tiny_cell("cityscapes", 64)).config.num_labels == 19


def test_custom_crop_scales_test_scale():
    assert tiny_cell("ade20k", 64).test_scale == (256, 64)
    assert tiny_cell("cityscapes", 64).test_scale == (128, 64)


def test_non_matrix_resolution_scales_test_scale():
    from segopt_core.variants import make_cell

    assert make_cell("b0", 128, "ade20k").test_scale == (512, 128)
    assert make_cell("b0", 512, "cityscapes").test_scale == (1024, 512)
