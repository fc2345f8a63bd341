from __future__ import annotations

import pytest
import torch

import fewshot_course
from fewshot_course._device import DEVICE_ENV_VAR


def test_device_defaults_to_best_available(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert fewshot_course.device().type == expected


def test_device_can_be_overridden(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV_VAR, "cpu")
    assert fewshot_course.device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_asking_for_missing_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV_VAR, "cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        fewshot_course.device()


def test_seed_everything_repeats_random_draws():
    fewshot_course.seed_everything(3)
    first = torch.rand(4)
    fewshot_course.seed_everything(3)
    assert torch.equal(first, torch.rand(4))
