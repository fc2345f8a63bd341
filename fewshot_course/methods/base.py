"""The interface every few-shot classifier of the course shares: fit on a support set, predict.

A method is an ``nn.Module`` (so ``.to(device)``, ``.parameters()`` and ``state_dict()`` work) with

* ``fit(support_x, support_y)``: take in one task's labelled support set; returns the method;
* ``predict(query_x) -> logits [Q, N]``: scores of the query images for the N support classes;
* ``meta_loss(batch) -> (loss, accuracy)``: only for methods that learn across tasks; the training
  loop (``fewshot_course.training.train``) minimises it.

Evaluation (``fewshot_course.evaluation.evaluate``) calls ``fit`` then ``predict`` on each episode,
so every method is measured in exactly the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Self

import torch
import torch.nn.functional as F
from torch import nn

from fewshot_course.episodes import EpisodeBatch


class FewShotClassifier(nn.Module):
    """Base class: ``fit`` a support set, then ``predict`` query logits."""

    #: Whether ``meta_loss`` exists, i.e. whether ``train`` has something to optimise.
    trainable: bool = False

    def fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> FewShotClassifier:
        """Adapt to one task. support_x: [S, C, H, W], support_y: [S] labels in 0..N-1."""
        raise NotImplementedError

    def predict(self, query_x: torch.Tensor) -> torch.Tensor:
        """Logits [Q, N] for query_x [Q, C, H, W]; call ``fit`` first."""
        raise NotImplementedError

    def meta_loss(self, batch: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean query loss and accuracy over a batch of tasks (a scalar tensor each)."""
        raise NotImplementedError(
            f"{type(self).__name__} learns nothing across tasks, so it has no meta_loss; "
            "evaluate it directly")

    def episode_loss(self, batch: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """``meta_loss`` computed the way evaluation works: fit then predict, task by task.

        Methods whose training objective is exactly "classify the queries after fitting the
        support set" (ProtoNet, for example) use this as their ``meta_loss``; each episode's loss
        is ``query_loss``.
        """
        losses, accuracies = [], []
        for episode in batch:
            logits = self.fit(episode.support_x, episode.support_y).predict(episode.query_x)
            losses.append(self.query_loss(logits, episode.query_y))
            accuracies.append((logits.argmax(dim=1) == episode.query_y).float().mean())
        return torch.stack(losses).mean(), torch.stack(accuracies).mean()

    def query_loss(self, logits: torch.Tensor, query_y: torch.Tensor) -> torch.Tensor:
        """The training loss of one episode's query logits [Q, N] and labels [Q]: cross-entropy."""
        return F.cross_entropy(logits, query_y)

    @property
    def device(self) -> torch.device:
        """The device of the method's parameters or buffers (CPU when it has none)."""
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")


class PredictTimeMethod(FewShotClassifier):
    """Base for methods that do all their work in ``predict``, on support and queries together.

    ``fit`` only checks the support set and keeps it; ``kept_support()`` hands it back.
    """

    def __init__(self) -> None:
        super().__init__()
        self._support: tuple[torch.Tensor, torch.Tensor] | None = None

    def fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> Self:
        check_support(support_y)
        self._support = (support_x, support_y)
        return self

    def kept_support(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The support images [S, C, H, W] and labels [S] of the last ``fit``."""
        if self._support is None:
            raise RuntimeError("call fit(support_x, support_y) before predict(query_x)")
        return self._support


class EpisodeViews(PredictTimeMethod):
    """Base for test-time augmentation by views of the whole episode: ``self.method`` is fitted
    on each view of the support set and scores the same view of the queries; ``predict`` returns
    the mean log-probabilities [Q, N].

    A view is a function images [B, C, H, W] -> [B, C, H, W] applied alike to support and query
    images, so that each view is still the same task; subclasses list theirs in ``views_of``.
    """

    method: FewShotClassifier

    def views_of(self) -> Sequence[Callable[[torch.Tensor], torch.Tensor]]:
        raise NotImplementedError

    def predict(self, query_x: torch.Tensor) -> torch.Tensor:
        support_x, support_y = self.kept_support()
        views = self.views_of()
        total: torch.Tensor | float = 0.0
        for view in views:
            self.method.fit(view(support_x), support_y)
            total = total + self.method.predict(view(query_x)).log_softmax(dim=-1)
        return total / len(views)


def check_support(support_y: torch.Tensor) -> int:
    """The number of classes N of a support set; every label 0..N-1 must occur at least once."""
    if support_y.ndim != 1 or support_y.numel() == 0:
        raise ValueError(f"support_y must be a non-empty 1-D label tensor, got shape "
                         f"{tuple(support_y.shape)}")
    n_way = int(support_y.max()) + 1
    counts = torch.bincount(support_y, minlength=n_way)
    if (counts == 0).any() or int(support_y.min()) < 0:
        missing = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"support labels must cover 0..{n_way - 1} with at least one example "
                         f"each; classes {missing} have none (labels present: "
                         f"{sorted(set(support_y.tolist()))})")
    return n_way


def fit_linear_head(features: torch.Tensor, labels: torch.Tensor, n_way: int, *,
                    weight_decay: float = 1e-3,
                    max_iter: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression on fixed features, fitted to convergence with L-BFGS.

    features: [M, D], labels: [M] in 0..n_way-1. Returns the head's (weight [n_way, D],
    bias [n_way]) on the features' device, for ``F.linear``; kept out of the method's registered
    parameters, since it belongs to one task only. L2 regularisation (``weight_decay``) keeps the
    weights finite when the classes are separable, which they almost always are with a handful of
    examples. Deterministic: the head starts from zero.
    """
    features = features.detach()
    head = nn.Linear(features.shape[1], n_way).to(features.device, features.dtype)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    optimiser = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=max_iter,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(head(features), labels)
        loss = loss + weight_decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    return head.weight.detach(), head.bias.detach()
