"""Prototypical Networks (Snell, Swersky & Zemel, NeurIPS 2017).

Embed every image with a shared encoder f; a class's prototype is the mean embedding of its support
examples, c_n = mean_{i: y_i = n} f(x_i); a query is scored by its negative squared Euclidean
distance to each prototype, logit_n(x) = -||f(x) - c_n||^2. Meta-training minimises the
cross-entropy of those logits on the query set, episode after episode.
"""

from __future__ import annotations

import torch
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
    """Prototypical Network around ``encoder``: [B, C, H, W] -> [B, ...] (flattened to [B, D])."""

    trainable = True

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
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
