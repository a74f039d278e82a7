"""Saving a REPA encoder is atomic: a save that fails part-way leaves no weights file, and no temporary."""

import pytest
import safetensors.torch
import torch

from pdeinv.latent.encoders import ViTConfig, ViTEncoder, load_encoder, save_encoder


def tiny_vit() -> ViTEncoder:
    torch.manual_seed(0)
    return ViTEncoder(ViTConfig(image=8, patch=4, channels=2, dim=8, depth=1, heads=2))


def test_a_save_killed_while_writing_the_weights_leaves_nothing_to_load(tmp_path, monkeypatch):
    def write_half_then_fail(tensors, filename):
        with open(filename, "wb") as f:
            f.write(b"\x00" * 16)
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_encoder(tiny_vit(), tmp_path / "vit")
    assert list((tmp_path / "vit").iterdir()) == []


def test_a_save_writes_exactly_the_weights_and_the_card(tmp_path):
    vit = tiny_vit()
    save_encoder(vit, tmp_path / "vit")
    assert sorted(p.name for p in (tmp_path / "vit").iterdir()) == ["card.json", "model.safetensors"]
    again = load_encoder(tmp_path / "vit").state_dict()
    assert again.keys() == vit.state_dict().keys()
    assert all(torch.equal(again[k], v) for k, v in vit.state_dict().items())
