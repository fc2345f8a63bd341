"""Two honest baselines every few-shot method must beat.

* ``NearestNeighbour``: label a query with the class of its nearest support example, on raw pixels
  or on the embeddings of any encoder. No learning at all.
* ``FineTune``: the "Baseline" of Chen et al., "A Closer Look at Few-shot Classification" (ICLR
  2019). Pre-train an ordinary classifier on all meta-train classes at once, then, for each task,
  freeze its encoder and fit a new linear head on the support embeddings. It asks whether
  learning-to-learn beats plain transfer learning (on many benchmarks it is closer than hoped).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewshot_course.episodes import EpisodeBatch
from fewshot_course.methods.base import FewShotClassifier, check_support, fit_linear_head
from fewshot_course.methods.protonet import squared_distances


class NearestNeighbour(FewShotClassifier):
    """1-nearest-neighbour on ``encoder`` embeddings, or on raw pixels when ``encoder`` is None.

    The logit of class n is minus the squared distance to the closest support example of class n,
    so the arg-max is the 1-NN decision and any number of examples per class works.
    """

    def __init__(self, encoder: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self._support: tuple[torch.Tensor, torch.Tensor, int] | None = None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """[B, D] embeddings (flattened pixels without an encoder) of images x [B, C, H, W]."""
        return (x if self.encoder is None else self.encoder(x)).flatten(start_dim=1)

    def fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> NearestNeighbour:
        self._support = (self.embed(support_x), support_y, check_support(support_y))
        return self

    def predict(self, query_x: torch.Tensor) -> torch.Tensor:
        if self._support is None:
            raise RuntimeError("call fit(support_x, support_y) before predict(query_x)")
        support, labels, n_way = self._support
        distances = squared_distances(self.embed(query_x), support)  # [Q, S]
        nearest = torch.full((distances.shape[0], n_way), float("inf"), dtype=distances.dtype,
                             device=distances.device)
        nearest = nearest.scatter_reduce(1, labels.expand_as(distances), distances, reduce="amin")
        return -nearest


class FineTune(FewShotClassifier):
    """A classifier pre-trained on the base classes; per task, a new head on frozen features.

    Args:
        encoder: [B, C, H, W] -> [B, ...] feature extractor (flattened to [B, feature_dim]).
        feature_dim: D, the flattened size of the encoder's output.
        n_base_classes: number of meta-train classes; pre-training classifies all of them at once,
            using the dataset class ids that every episode carries (``EpisodeBatch.classes``).
        weight_decay: L2 penalty of the per-task logistic-regression head.

    Pre-training reuses the meta-training loop: ``meta_loss`` reads each episode simply as labelled
    base-class images (support and query alike) and returns the ordinary cross-entropy over all
    base classes. Each episode's images are embedded in one call per support and query set, so
    BatchNorm sees batches of the same size it will see when fitting a support set.
    """

    trainable = True

    def __init__(self, encoder: nn.Module, feature_dim: int, n_base_classes: int, *,
                 weight_decay: float = 1e-3):
        super().__init__()
        self.encoder = encoder
        self.base_head = nn.Linear(feature_dim, n_base_classes)
        self.weight_decay = weight_decay
        self._head: tuple[torch.Tensor, torch.Tensor] | None = None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).flatten(start_dim=1)

    def meta_loss(self, batch: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor]:
        n_base = self.base_head.out_features
        class_ids = torch.tensor(batch.classes, device=batch.support_y.device)  # [B, N]
        if int(class_ids.max()) >= n_base or int(class_ids.min()) < 0:
            raise ValueError(f"episode class ids range over {int(class_ids.min())}.."
                             f"{int(class_ids.max())} but FineTune was built for "
                             f"n_base_classes={n_base}; pass the number of classes of the "
                             "meta-train dataset")
        losses, accuracies = [], []
        for task, episode in enumerate(batch):
            for x, y in ((episode.support_x, episode.support_y),
                         (episode.query_x, episode.query_y)):
                target = class_ids[task][y]
                logits = self.base_head(self.embed(x))
                losses.append(F.cross_entropy(logits, target))
                accuracies.append((logits.argmax(dim=1) == target).float().mean())
        return torch.stack(losses).mean(), torch.stack(accuracies).mean()

    def fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> FineTune:
        n_way = check_support(support_y)
        with torch.no_grad():
            features = self.embed(support_x)
        self._head = fit_linear_head(features, support_y, n_way, weight_decay=self.weight_decay)
        return self

    def predict(self, query_x: torch.Tensor) -> torch.Tensor:
        if self._head is None:
            raise RuntimeError("call fit(support_x, support_y) before predict(query_x)")
        return F.linear(self.embed(query_x), *self._head)
