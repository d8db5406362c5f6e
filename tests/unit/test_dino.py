"""pipeline.dino.model: on-device preprocessing, token pooling, weight resolution and the embedder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.dino.model import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Embedder,
    ModelUnavailableError,
    feature_layout,
    load_model,
    pool,
    preprocess,
    resolve,
    save_random_checkpoint,
)

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def test_preprocess_of_frames_at_model_size_is_only_imagenet_normalisation():
    frames = torch.randint(0, 256, (2, 28, 28, 3), dtype=torch.uint8)
    x = preprocess(frames, 28, MEAN, STD)
    expected = (frames.permute(0, 3, 1, 2).float() / 255 - MEAN) / STD
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-6)


def test_preprocess_resizes_other_sizes_on_the_device():
    frames = torch.zeros((3, 40, 70, 3), dtype=torch.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 200, 100, 50  # constant colour survives any resize
    x = preprocess(frames, 28, MEAN, STD)
    assert x.shape == (3, 3, 28, 28)
    expected = (torch.tensor([200, 100, 50]).view(1, 3, 1, 1) / 255 - MEAN) / STD
    torch.testing.assert_close(x, expected.expand_as(x), rtol=0, atol=1e-5)


def test_pool_skips_class_and_register_tokens():
    hidden = torch.arange(2 * 6 * 2, dtype=torch.float32).view(2, 6, 2)  # 1 cls + 2 registers + 3 patches
    torch.testing.assert_close(pool(hidden, "cls", 3), hidden[:, 0])
    torch.testing.assert_close(pool(hidden, "mean", 3), hidden[:, 3:].mean(1))
    torch.testing.assert_close(pool(hidden, "cls+mean", 3), torch.cat([hidden[:, 0], hidden[:, 3:].mean(1)], 1))
    assert feature_layout(768, "cls+mean") == [("cls", 0, 768), ("patch_mean", 768, 1536)]
    assert feature_layout(1536, "cls") == [("cls", 0, 1536)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_random_checkpoint(tmp_path_factory.mktemp("m") / "ckpt", hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, image_size=28)


def test_embedder_in_bf16_autocast_stays_close_to_float32(tiny):
    model = load_model(resolve(str(tiny), "main"), torch.device("cpu"))
    frames = torch.randint(0, 256, (3, 28, 28, 3), dtype=torch.uint8)
    fp32 = Embedder(model, pooling="cls+mean", image_size=28, autocast_bf16=False)(frames)
    bf16 = Embedder(model, pooling="cls+mean", image_size=28, autocast_bf16=True)(frames)
    assert fp32.shape == bf16.shape == (3, 64) and fp32.dtype == torch.float16
    assert not torch.equal(fp32, bf16)
    np.testing.assert_allclose(bf16.float().numpy(), fp32.float().numpy(), atol=0.1)


def test_local_checkpoint_digest_follows_the_weights(tmp_path, tiny):
    first = resolve(str(tiny), "main").resolved
    assert first == resolve(str(tiny), "main").resolved
    save_random_checkpoint(tmp_path / "ckpt", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, seed=5)
    assert resolve(str(tmp_path / "ckpt"), "main").resolved != first


def test_a_folder_that_is_not_a_checkpoint_or_not_dinov2_is_refused(tmp_path):
    from transformers import ViTConfig, ViTModel

    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError, match="no config.json"):
        resolve(str(tmp_path / "empty"), "main")
    ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                       image_size=28, patch_size=14)).save_pretrained(tmp_path / "vit")
    with pytest.raises(ModelUnavailableError, match="'vit' model, not DINOv2"):
        load_model(resolve(str(tmp_path / "vit"), "main"), torch.device("cpu"))
