"""Where torch work runs: `auto`, `cpu`, `cuda` or `cuda:N`, checked by name before anything heavy loads."""

from __future__ import annotations

import os
import re

DEVICE_NAMES = "auto, cpu, cuda or cuda:N"
_DEVICE = re.compile(r"(auto|cpu|cuda(:\d+)?)")


class DeviceError(ValueError):
    """A device name that is not one of DEVICE_NAMES, or a CUDA device on a machine without CUDA."""


def check_device_name(device: str) -> str:
    """`device` itself when it is one of DEVICE_NAMES (no torch import, so the CLI can check it first)."""
    if not _DEVICE.fullmatch(device):
        raise DeviceError(f"unknown device {device!r}; use {DEVICE_NAMES}")
    return device


def resolve_device(device: str):
    """The torch.device for `device`: "auto" -> CUDA when available, else CPU. On the CPU, torch uses at most
    the cores this process may run on (a caller that asked for fewer threads keeps its setting)."""
    import torch

    check_device_name(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {device!r} requested but CUDA is not available (torch {torch.__version__})")
    if resolved.type == "cpu":
        torch.set_num_threads(max(1, min(torch.get_num_threads(), len(os.sched_getaffinity(0)))))
    return resolved
