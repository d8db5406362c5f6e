"""Frozen DINOv2 through transformers: locating the weights, on-device preprocessing, token pooling.

The eval transform (resize 256, centre crop 224) happens once in the `decode` stage; here uint8 frames
are only scaled to [0, 1] and normalised with the ImageNet mean/std as tensors on the model's device
(resized there too when they are not `image_size` already). transformers' PIL image processor is never
used. Features are the final layer-normed tokens: `cls` (the class token), `mean` (the mean of the patch
tokens, registers excluded) or `cls+mean` (both, concatenated in that order).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Pooling = Literal["cls", "mean", "cls+mean"]
POOLED_PARTS = {"cls": ("cls",), "mean": ("patch_mean",), "cls+mean": ("cls", "patch_mean")}
# (hidden size, layers, heads, SwiGLU feed-forward) of the released DINOv2 ViTs (patch 14).
SHAPES = {
    "small": (384, 12, 6, False),
    "base": (768, 12, 12, False),
    "large": (1024, 24, 16, False),
    "giant": (1536, 40, 24, True),
}


class ModelUnavailableError(RuntimeError):
    """The DINOv2 weights cannot be found (offline, wrong id or path); the message says how to provide them."""


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from. `resolved` is the hub commit hash, or `local:<digest>` of a local
    checkpoint's files, so that new weights under the same name change every fingerprint."""

    model: str
    revision: str
    resolved: str
    local_files_only: bool

    @property
    def is_local(self) -> bool:
        return Path(self.model).is_dir()


def resolve(model: str, revision: str) -> ModelSource:
    """Locate `model` (hub id or local folder) without loading the weights; ModelUnavailableError if absent."""
    from huggingface_hub import is_offline_mode

    if Path(model).is_dir():
        return ModelSource(model, revision, f"local:{_folder_digest(Path(model))}", True)
    offline = is_offline_mode()
    try:
        from huggingface_hub import hf_hub_download

        config = hf_hub_download(model, "config.json", revision=revision, local_files_only=offline)
    except Exception as err:  # hub errors are OSError/ValueError subclasses that vary across versions
        raise unavailable(model, revision, offline, err) from err
    # the hub cache keeps a revision's files in snapshots/<commit hash>/: the folder names the resolved commit
    return ModelSource(model, revision, Path(config).parent.name, offline)


def load_model(source: ModelSource, device):
    """The frozen model (eval mode, no gradients) on `device`, weights in float32."""
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(
            source.model, revision=source.revision, local_files_only=source.local_files_only
        )
    except Exception as err:  # missing weight file, foreign checkpoint, hub errors
        raise unavailable(source.model, source.revision, source.local_files_only, err) from err
    if model.config.model_type not in ("dinov2", "dinov2_with_registers"):
        raise ModelUnavailableError(f"{source.model} is a '{model.config.model_type}' model, not DINOv2")
    model.requires_grad_(False)
    return model.eval().to(device)


def unavailable(model: str, revision: str, offline: bool, err: Exception) -> ModelUnavailableError:
    where = "offline (HF_HUB_OFFLINE is set)" if offline else "from the Hugging Face hub or a local folder"
    return ModelUnavailableError(
        f"DINOv2 weights {model!r} (revision {revision!r}) are not available {where}: {err}\n"
        f"Provide them in one of two ways:\n"
        f"  1. a local checkpoint folder (config.json + model.safetensors): on a machine with network run\n"
        f"     `hf download {model} --revision {revision} --local-dir models/dinov2` (older hubs:\n"
        f"     `huggingface-cli download ...`), copy the folder here and set extract_dino.model to its path\n"
        f"     in params.yaml;\n"
        f"  2. the Hugging Face cache: run `hf download {model} --revision {revision}` with HF_HOME pointing\n"
        f"     at the cache this machine uses, and keep extract_dino.model = {model!r}."
    )


def _folder_digest(folder: Path) -> str:
    from pipeline.sequences import file_fingerprint

    # only what loading reads (configs, weights): editing the folder's README leaves every fingerprint as it was
    files = sorted(p for p in folder.iterdir() if p.suffix in (".json", ".safetensors", ".bin") and p.is_file())
    if not any(p.name == "config.json" for p in files):
        raise ModelUnavailableError(f"{folder} holds no config.json: not a transformers checkpoint folder")
    return hashlib.sha256("|".join(file_fingerprint(p) for p in files).encode()).hexdigest()[:16]


def feature_layout(hidden_size: int, pooling: Pooling) -> list[tuple[str, int, int]]:
    """[(name, start, stop)] of the parts of a pooled feature, e.g. [("cls", 0, 768), ("patch_mean", 768, 1536)]."""
    return [(name, i * hidden_size, (i + 1) * hidden_size) for i, name in enumerate(POOLED_PARTS[pooling])]


def preprocess(frames, image_size: int, mean, std):
    """(B, H, W, 3) uint8 on the device -> (B, 3, image_size, image_size) float32, ImageNet-normalised.

    Frames of another size get the eval transform on the device: shorter side to `image_size` (bicubic,
    antialiased), centre crop. `mean` and `std` are (1, 3, 1, 1) tensors on the same device.
    """
    import torch.nn.functional as F

    x = frames.permute(0, 3, 1, 2).float().div_(255.0)
    height, width = x.shape[-2:]
    if (height, width) != (image_size, image_size):
        scale = image_size / min(height, width)
        # rounding must never leave a side shorter than the crop
        size = (max(image_size, round(height * scale)), max(image_size, round(width * scale)))
        # antialias and clamp follow PIL's resize in the reference eval transform: it low-pass filters when shrinking,
        # and its uint8 output cannot overshoot [0, 1] as bicubic does
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(0.0, 1.0)
        top, left = (size[0] - image_size) // 2, (size[1] - image_size) // 2
        x = x[..., top : top + image_size, left : left + image_size]
    return (x - mean) / std


def pool(hidden, pooling: Pooling, n_prefix: int):
    """(B, N, C) final tokens (class token first, then `n_prefix - 1` registers, then patches) -> (B, D)."""
    import torch

    parts = {"cls": hidden[:, 0], "patch_mean": hidden[:, n_prefix:].mean(dim=1)}
    return torch.cat([parts[name] for name in POOLED_PARTS[pooling]], dim=1)


class Embedder:
    """uint8 frames on the device -> pooled float16 features, in inference mode; bf16 autocast when asked."""

    def __init__(self, model, *, pooling: Pooling, image_size: int, autocast_bf16: bool):
        import torch

        self.model = model
        self.pooling = pooling
        self.image_size = image_size
        self.device = next(model.parameters()).device
        self.autocast_bf16 = autocast_bf16
        self.n_prefix = 1 + int(getattr(model.config, "num_register_tokens", 0) or 0)
        self.dim = model.config.hidden_size * len(POOLED_PARTS[pooling])
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def __call__(self, frames):
        """(B, H, W, 3) uint8 on the device -> (B, dim) float16 on the device."""
        import torch

        with torch.inference_mode():
            # outside autocast: the normalised pixels stay float32, only the ViT runs in bf16
            x = preprocess(frames, self.image_size, self.mean, self.std)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast_bf16):
                hidden = self.model(pixel_values=x).last_hidden_state
            # pooled in float32 (the mean of hundreds of patch tokens in bf16 would lose precision), stored as float16
            # (DESIGN.md Sec. 2)
            return pool(hidden.float(), self.pooling, self.n_prefix).to(torch.float16)


def save_random_checkpoint(
    path: str | Path, shape: str = "small", *, image_size: int = 518, seed: int = 0, **config
) -> Path:
    """Write a randomly initialised DINOv2 of a released `shape` (small/base/large/giant), or of the sizes
    in `config` (hidden_size, num_hidden_layers, num_attention_heads, ...), to a checkpoint folder.
    For tests, benchmarks and the generated sample dataset: no download needed."""
    import torch
    from transformers import Dinov2Config, Dinov2Model

    hidden, layers, heads, swiglu = SHAPES[shape]
    settings = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, use_swiglu_ffn=swiglu)
    settings.update(config)
    # the same seed writes the same weights, hence the same local digest and fingerprints
    torch.manual_seed(seed)
    # `random_weights` travels in config.json, so stores and reports can say the features carry no training
    model = Dinov2Model(Dinov2Config(patch_size=14, image_size=image_size, random_weights=True, **settings))
    model.save_pretrained(str(path))
    (Path(path) / "README.md").write_text(
        "DINOv2 architecture with RANDOM weights (pipeline.dino.model.save_random_checkpoint), for offline tests,\n"
        "benchmarks and the generated sample dataset. Its features carry no pretrained knowledge. For real\n"
        "features set extract_dino.model to facebook/dinov2-base (or a local copy of it).\n"
    )
    return Path(path)
