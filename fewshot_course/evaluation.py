"""Honest evaluation: accuracy averaged over many episodes, with a 95% confidence interval.

One episode's accuracy depends heavily on which classes and images were drawn, so a single number
means little. We report the mean over n episodes and the half-width of its normal-approximation
95% confidence interval, 1.96 * std / sqrt(n), where std is the sample standard deviation of the
per-episode accuracies. Every method is evaluated through the same ``fit`` then ``predict`` calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fewshot_course._device import device as default_device
from fewshot_course.episodes import Episode
from fewshot_course.progress import progress


@dataclass(frozen=True)
class Result:
    """Accuracy over n episodes: ``mean``, ``ci95`` (half-width), per-episode ``accuracies``."""

    mean: float
    ci95: float
    accuracies: tuple[float, ...]

    @classmethod
    def from_accuracies(cls, accuracies: Sequence[float]) -> Result:
        """Mean and 1.96 * std / sqrt(n) (sample std, n - 1 in the denominator) of accuracies."""
        n = len(accuracies)
        if n < 2:
            raise ValueError(f"a confidence interval needs at least 2 episodes, got {n}")
        values = torch.tensor(list(accuracies), dtype=torch.float64)
        return cls(float(values.mean()), float(1.96 * values.std(correction=1) / math.sqrt(n)),
                   tuple(float(a) for a in accuracies))

    @property
    def episodes(self) -> int:
        return len(self.accuracies)

    def __str__(self) -> str:
        return f"accuracy {self.mean:.3f} ± {self.ci95:.3f} (95% CI, {self.episodes} episodes)"


def episode_accuracy(method, episode: Episode) -> float:
    """Fraction of the episode's queries that ``method`` classifies correctly after fitting."""
    logits = method.fit(episode.support_x, episode.support_y).predict(episode.query_x)
    return float((logits.argmax(dim=1) == episode.query_y).float().mean())


def evaluate(method, sampler, episodes: int = 600, *, device: torch.device | str | None = None,
             desc: str = "evaluate") -> Result:
    """Accuracy of ``method`` over ``episodes`` episodes drawn from ``sampler``.

    Args:
        method: a ``FewShotClassifier`` (``fit`` then ``predict``); moved to ``device``.
        sampler: anything with ``sample() -> Episode`` (an ``EpisodeSampler``; seed it for a
            repeatable evaluation), or a sequence of episodes, of which the first ``episodes``
            are used.
        episodes: number of episodes n (at least 2).
        device: where to run; ``fewshot_course.device()`` by default.

    Gradients are off except where a method turns them on for its own adaptation (MAML's inner
    loop, fitting a linear head). The method's train/eval mode is restored afterwards.
    """
    if episodes < 2:
        raise ValueError(f"a confidence interval needs at least 2 episodes, got {episodes}")
    if isinstance(sampler, Sequence) and len(sampler) < episodes:
        raise ValueError(f"asked for {episodes} episodes but only {len(sampler)} were given")
    device = torch.device(device) if device is not None else default_device()
    method.to(device)
    was_training = method.training
    method.eval()
    accuracies = []
    bar = progress(range(episodes), desc=desc)
    try:
        with torch.no_grad():
            for i in bar:
                episode = sampler[i] if isinstance(sampler, Sequence) else sampler.sample()
                accuracies.append(episode_accuracy(method, episode.to(device)))
                bar.set_postfix(acc=f"{sum(accuracies) / len(accuracies):.3f}", refresh=False)
    finally:
        bar.close()
        method.train(was_training)
    return Result.from_accuracies(accuracies)
