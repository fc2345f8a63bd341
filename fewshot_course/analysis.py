"""Looking inside an evaluation: predictions and accuracy per class, episode by episode.

``evaluate`` reports one accuracy per episode. For class-imbalanced episodes the interesting
question is *which* classes suffer, so ``evaluate_per_class`` keeps one accuracy per class of
each episode (label order: with ``EpisodeSampler(k_shot=[K_0, ..., K_{N-1}])`` column i is the
class that had K_i support images).
"""

from __future__ import annotations

import torch

from fewshot_course._device import device as default_device
from fewshot_course.episodes import Episode
from fewshot_course.progress import progress

__all__ = ["episode_predictions", "per_class_accuracy", "evaluate_per_class"]


def episode_predictions(method, episode: Episode) -> torch.Tensor:
    """Predicted labels [Q] (on the CPU) of the episode's queries after ``method.fit``.

    Runs on the method's device, in eval mode and without gradients (MAML switches them on for
    its own inner loop), and restores the method's train/eval mode.
    """
    device = getattr(method, "device", None) or torch.device("cpu")
    episode = episode.to(device)
    was_training = method.training
    method.eval()
    try:
        with torch.no_grad():
            logits = method.fit(episode.support_x, episode.support_y).predict(episode.query_x)
    finally:
        method.train(was_training)
    return logits.argmax(dim=1).cpu()


def per_class_accuracy(method, episode: Episode) -> torch.Tensor:
    """Accuracy [N] of ``method`` on the queries of each class (label) of ``episode``."""
    predicted = episode_predictions(method, episode)
    query_y = episode.query_y.cpu()
    correct = torch.zeros(episode.n_way).index_add(0, query_y, (predicted == query_y).float())
    return correct / torch.bincount(query_y, minlength=episode.n_way).float()


def evaluate_per_class(method, sampler, episodes: int, *, device: torch.device | str | None = None,
                       desc: str = "evaluate per class") -> torch.Tensor:
    """Per-class query accuracies [episodes, N] of ``method`` over episodes from ``sampler``.

    The row means are the per-episode accuracies ``evaluate`` would report (the query set is
    balanced), so ``Result.from_accuracies(table.mean(dim=1).tolist())`` gives its ``Result``.
    """
    if episodes < 1:
        raise ValueError(f"episodes = {episodes}: evaluate at least 1 episode")
    method.to(torch.device(device) if device is not None else default_device())
    rows = [per_class_accuracy(method, sampler.sample())
            for _ in progress(range(episodes), desc=desc)]
    return torch.stack(rows)
