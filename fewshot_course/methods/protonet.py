"""Prototypical Networks (Snell, Swersky & Zemel, NeurIPS 2017).

Embed every image with a shared encoder f; a class's prototype is the mean embedding of its support
examples, c_n = mean_{i: y_i = n} f(x_i); a query is scored by its negative squared Euclidean
distance to each prototype, logit_n(x) = -||f(x) - c_n||^2. Meta-training minimises the
cross-entropy of those logits on the query set, episode after episode.

With ``margin`` m > 0 the training loss asks for more than the right answer: it scores each query
as if it lay (1 + m) times farther (in squared distance) from its own prototype, so it keeps
pushing until d_true^2 (1 + m) is well below every other class's d^2. This is a multiplicative
margin in the spirit of the large-margin softmax losses (Liu et al., ICML 2016). Prediction is
unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewshot_course.episodes import EpisodeBatch
from fewshot_course.methods.base import FewShotClassifier, check_support


def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Class means [N, D] of embeddings [S, D] with labels [S]; class sizes may differ."""
    sums = torch.zeros(n_way, embeddings.shape[1], dtype=embeddings.dtype,
                       device=embeddings.device).index_add(0, labels, embeddings)
    counts = torch.bincount(labels, minlength=n_way).to(embeddings.dtype)
    return sums / counts[:, None]


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a_i - b_j||^2 for a [P, D] and b [R, D] -> [P, R], by direct differences (exact)."""
    return (a[:, None, :] - b[None, :, :]).pow(2).sum(dim=-1)


class ProtoNet(FewShotClassifier):
    """Prototypical Network around ``encoder``: [B, C, H, W] -> [B, ...] (flattened to [B, D]).

    ``margin`` (>= 0, training loss only): the true class's squared distance is multiplied by
    ``1 + margin`` in ``meta_loss``; 0 is the paper's loss.
    """

    trainable = True

    def __init__(self, encoder: nn.Module, *, margin: float = 0.0):
        super().__init__()
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0 (0 is the plain loss), got {margin}")
        self.encoder = encoder
        self.margin = float(margin)
        self._prototypes: torch.Tensor | None = None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings [B, D] of images x [B, C, H, W], in float32 or wider."""
        embeddings = self.encoder(x).flatten(start_dim=1)
        if embeddings.dtype in (torch.bfloat16, torch.float16):
            # Under mixed precision (train(precision="bfloat16")) distances of about 100 would
            # be rounded by about 0.5 in bfloat16: compare embeddings in float32.
            embeddings = embeddings.float()
        return embeddings

    def fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> ProtoNet:
        n_way = check_support(support_y)
        self._prototypes = prototypes(self.embed(support_x), support_y, n_way)
        return self

    def predict(self, query_x: torch.Tensor) -> torch.Tensor:
        if self._prototypes is None:
            raise RuntimeError("call fit(support_x, support_y) before predict(query_x)")
        return -squared_distances(self.embed(query_x), self._prototypes)

    def meta_loss(self, batch: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return self.episode_loss(batch)

    def query_loss(self, logits: torch.Tensor, query_y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of logits [Q, N] (that is, -d^2 <= 0) with the margin applied."""
        if self.margin == 0:
            return super().query_loss(logits, query_y)
        true_class = F.one_hot(query_y, logits.shape[1]).to(logits.dtype)
        return F.cross_entropy(logits * (1 + self.margin * true_class), query_y)
