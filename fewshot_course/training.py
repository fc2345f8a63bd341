"""Meta-training: one loop for every trainable method, with validation and resumable checkpoints.

Each step draws a meta-batch of episodes, asks the method for ``meta_loss(batch) -> (loss,
accuracy)`` and takes one Adam step on ``method.parameters()``. A checkpoint holds everything needed
to continue exactly where training stopped: the weights, the optimiser's state, the configuration,
the seed, the step, the random number generators' states and the sampler's position. A resumed run
therefore produces the same weights, bit for bit on the CPU, as one that never stopped.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from fewshot_course._device import device as default_device
from fewshot_course._malloc import tune_allocator
from fewshot_course.evaluation import evaluate
from fewshot_course.progress import progress
from fewshot_course.seeding import seed_everything

CHECKPOINT_FORMAT = "fewshot_course.checkpoint/1"
LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("float32", "bfloat16")
OMITTED_DEFAULTS = {"precision": "float32"}


@dataclass
class History:
    """What happened during training, step by step (steps count from 1)."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    #: (step, mean validation accuracy, its 95% CI half-width) at each validation.
    validation: list[tuple[int, float, float]] = field(default_factory=list)
    #: CPU seconds (``time.process_time``, all threads) of the training loop, validation and
    #: earlier resumed runs included.
    cpu_seconds: float = 0.0


def train(method, sampler, steps: int, *, val_sampler=None, val_every: int = 100,
          val_episodes: int = 100, lr: float = 1e-3, meta_batch: int = 4,
          checkpoint: str | Path | None = None, checkpoint_every: int = 100, resume: bool = True,
          seed: int = 0, device: torch.device | str | None = None,
          run: dict | None = None, max_cpu_minutes: float | None = None,
          lr_schedule: str = "constant", precision: str = "float32") -> History:
    """Meta-train ``method`` for ``steps`` Adam steps on meta-batches from ``sampler``.

    Args:
        method: anything with ``meta_loss(batch) -> (loss, accuracy)``, ``parameters()`` and
            ``state_dict()`` (a trainable ``FewShotClassifier`` or a ``MAML``).
        sampler: ``sample_batch(meta_batch) -> EpisodeBatch`` (an ``EpisodeSampler``, ``Sinusoid``).
        steps: total number of steps; a resumed run continues up to this number.
        val_sampler: optional sampler of validation episodes; ``val_episodes`` of them are drawn
            once, then the same episodes are scored every ``val_every`` steps.
        lr: Adam's learning rate (the meta learning rate beta for MAML).
        meta_batch: tasks per step.
        checkpoint: file to save to every ``checkpoint_every`` steps and at the end; with
            ``resume=True`` an existing file is loaded and training continues from its step.
        seed: seeds Python, NumPy and torch at the start of a fresh run (stored in the checkpoint).
        device: ``fewshot_course.device()`` by default. On the CPU, glibc's allocator is tuned
            for the process first (``fewshot_course._malloc.tune_allocator``): freed tensor
            memory stays with the process for reuse instead of going back to the kernel.
        run: optional description of the run (dataset, episode shape, command line), stored in
            the checkpoint's ``config["run"]``.
        max_cpu_minutes: stop after the step at which the training loop's CPU time (this
            process, all threads, earlier resumed runs included) reaches this budget; the
            checkpoint is saved there, so a later call with a larger budget continues exactly.
        lr_schedule: ``"constant"``, or ``"cosine"``: the learning rate falls from ``lr`` to 0
            along half a cosine over the run, whose progress is the larger of step / ``steps``
            and CPU time / ``max_cpu_minutes`` (a run on a time budget anneals by the clock).
            A cosine run's budget is part of its settings: it resumes only with the same budget.
        precision: ``"float32"``, or ``"bfloat16"``: each step's ``meta_loss`` runs under
            ``torch.autocast`` in bfloat16 (mixed precision). Weights, gradients, Adam's state,
            checkpoints and validation stay float32; only the forward and backward passes'
            convolutions and matrix products run in bfloat16. Worth it on GPUs and on CPUs with
            native bfloat16 instructions (AVX512-BF16, AMX): on such a CPU a Conv4 ProtoNet took
            1.3 times the steps of float32 in the same CPU time, and second-order MAML 1.2 times,
            at the same accuracy within the noise (benchmarks/RESULTS.md, sections "omniglot
            ablation: float32" and "... MAML in float32"). Elsewhere bfloat16 is emulated and
            slower. A run's precision is part of its settings: it resumes only with
            the same precision.

    Raises:
        FloatingPointError: the loss became NaN or infinite; the message names the step.
    """
    device = torch.device(device) if device is not None else default_device()
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule={lr_schedule!r} is not one of {LR_SCHEDULES}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {PRECISIONS}")
    settings = {"lr": lr, "meta_batch": meta_batch, "seed": seed}
    if lr_schedule != "constant":  # constant runs keep the settings older checkpoints hold
        settings.update(lr_schedule=lr_schedule, steps=steps, max_cpu_minutes=max_cpu_minutes)
    if precision != OMITTED_DEFAULTS["precision"]:  # likewise
        settings["precision"] = precision
    if device.type == "cpu":
        tune_allocator()  # 1.19x on a Conv4 meta-iteration: RESULTS.md, section "throughput"
    method.to(device)
    optimiser = torch.optim.Adam(method.parameters(), lr=lr)
    history, start = History(), 0
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    # Drawn before any seeding or restoring, so validation never shifts the training randomness.
    validation_set = None
    if val_sampler is not None:
        validation_set = [val_sampler.sample() for _ in range(val_episodes)]

    if checkpoint is not None and resume and checkpoint.exists():
        state = _load(checkpoint)
        _check_settings(state, settings, getattr(method, "config", None), checkpoint)
        method.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        history = History(**state["history"])
        start = state["step"]
        _set_rng_state(state["rng"])
        _restore_sampler(sampler, state.get("sampler"), start, meta_batch)
    else:
        seed_everything(seed)

    def save(step: int) -> None:
        _save(checkpoint, {
            "format": CHECKPOINT_FORMAT,
            "config": {"method": getattr(method, "config", None),
                       "train": {**settings, "steps": steps}, "run": run},
            "seed": seed, "step": step, "model": method.state_dict(),
            "optimizer": optimiser.state_dict(), "rng": _rng_state(),
            "sampler": _sampler_state(sampler), "history": asdict(history)})

    method.train()
    cpu_start, cpu_before = time.process_time(), history.cpu_seconds
    bar = progress(range(start, steps), total=steps, initial=start, desc="train")
    for index in bar:
        if max_cpu_minutes is not None and history.cpu_seconds >= 60 * max_cpu_minutes:
            break
        step = index + 1
        batch = sampler.sample_batch(meta_batch).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16,
                            enabled=precision == "bfloat16"):
            loss, accuracy = method.meta_loss(batch)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f"the training loss became {loss_value} at step {step} (of {steps}); lower the "
                f"learning rate (lr={lr}) or the inner step size, or check the data for NaNs")
        optimiser.zero_grad()
        loss.backward()
        if lr_schedule == "cosine":
            done = index / steps
            if max_cpu_minutes is not None:
                done = max(done, history.cpu_seconds / (60 * max_cpu_minutes))
            for group in optimiser.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))
        optimiser.step()
        history.steps.append(step)
        history.loss.append(loss_value)
        history.accuracy.append(accuracy.item())
        postfix = {"loss": f"{loss_value:.3f}", "acc": f"{history.accuracy[-1]:.3f}"}
        if validation_set is not None and (step % val_every == 0 or step == steps):
            result = evaluate(method, validation_set, len(validation_set), device=device,
                              desc="validate")
            history.validation.append((step, result.mean, result.ci95))
            method.train()
        if history.validation:
            postfix["val"] = f"{history.validation[-1][1]:.3f}"
        bar.set_postfix(postfix)
        history.cpu_seconds = cpu_before + time.process_time() - cpu_start
        out_of_time = (max_cpu_minutes is not None
                       and history.cpu_seconds >= 60 * max_cpu_minutes)
        if checkpoint is not None and (step % checkpoint_every == 0 or step == steps
                                       or out_of_time):
            save(step)
    bar.close()
    return history


def load_checkpoint(path: str | Path, *, device: torch.device | str | None = None):
    """Rebuild the method saved in a checkpoint (written by ``train`` or the CLI), weights loaded.

    The checkpoint's ``config["method"]`` names the method and its architecture (see
    ``fewshot_course.methods.build_method``). The method is returned on ``device``
    (``fewshot_course.device()`` by default), ready for ``fit``/``predict``.
    """
    from fewshot_course.methods import build_method

    state = _load(Path(path))
    config = state["config"]["method"]
    if config is None:
        raise ValueError(f"{path} was saved from a method without a .config, so it cannot be "
                         "rebuilt; build the method yourself and load state['model'] into it")
    method = build_method(**config)
    method.load_state_dict(state["model"])
    return method.to(torch.device(device) if device is not None else default_device())


def shipped_checkpoint(name: str) -> Path:
    """Path of a checkpoint shipped with the library, e.g. ``"maml-glyphs-5w1s"``."""
    path = Path(str(resources.files("fewshot_course") / "checkpoints" / f"{name}.pt"))
    if not path.exists():
        available = sorted(p.stem for p in path.parent.glob("*.pt"))
        raise FileNotFoundError(f"no shipped checkpoint {name!r}; available: {available}")
    return path


def load_pretrained(name: str, *, device: torch.device | str | None = None):
    """A method shipped with the library (fewshot_course/checkpoints/README.md), ready to use."""
    return load_checkpoint(shipped_checkpoint(name), device=device)


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint dictionary (config, step, history, weights, ...), on the CPU."""
    return _load(Path(path))


def _load(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a fewshot_course checkpoint ({CHECKPOINT_FORMAT})")
    return state


def _save(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)  # atomic: an interrupted save never leaves a broken checkpoint


def _check_settings(state: dict, settings: dict, method_config: dict | None, path: Path) -> None:
    saved_method = state["config"]["method"]
    if saved_method is not None and method_config is not None and saved_method != method_config:
        different = {k: (saved_method.get(k), v) for k, v in method_config.items()
                     if saved_method.get(k) != v}
        raise ValueError(f"{path} holds a different model ({different}: saved vs now); use "
                         "another checkpoint path, or resume=False to start over")
    # Settings left at their defaults are not stored (older checkpoints lack them): compare them
    # by their defaults on both sides.
    saved = {**OMITTED_DEFAULTS, **state["config"]["train"]}
    settings = {**OMITTED_DEFAULTS, **settings}
    different = {k: (saved.get(k), v) for k, v in settings.items() if saved.get(k) != v}
    if different:
        listing = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in different.items())
        raise ValueError(f"cannot resume {path} with different settings ({listing}); use the "
                         "saved settings, another checkpoint path, or resume=False to start over")


def _rng_state() -> dict:
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss)}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))


def _sampler_state(sampler):
    return sampler.state_dict() if hasattr(sampler, "state_dict") else None


def _restore_sampler(sampler, state, step: int, meta_batch: int) -> None:
    """Put the sampler where it was after ``step`` meta-batches.

    Samplers with ``state_dict``/``load_state_dict`` are restored directly; any other
    deterministic sampler is replayed from its seed (exact, but it costs the sampling time).
    """
    if state is not None and hasattr(sampler, "load_state_dict"):
        sampler.load_state_dict(state)
        return
    for _ in range(step):
        sampler.sample_batch(meta_batch)
