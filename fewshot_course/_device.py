"""Which accelerator the course runs on."""

from __future__ import annotations

import os

import torch

DEVICE_ENV_VAR = "FEWSHOT_DEVICE"


def device() -> torch.device:
    """The device every part of the course uses.

    CUDA when available, else Apple's MPS, else the CPU. Set the environment variable
    ``FEWSHOT_DEVICE`` (for example ``cpu`` or ``cuda:1``) to override the choice.
    """
    requested = os.environ.get(DEVICE_ENV_VAR, "").strip()
    if requested:
        chosen = torch.device(requested)
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"{DEVICE_ENV_VAR}={requested!r} but CUDA is not available here; "
                               f"unset {DEVICE_ENV_VAR} or set it to 'cpu'.")
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
