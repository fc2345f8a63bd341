"""Augmented episodes: any method, fitted on distorted copies of the support set as well.

The simplest member of the "make more training data" family: a handwritten character drawn once
could have been drawn with a slightly different slant, size or stroke, so each support image is
joined by ``copies`` randomly distorted versions of itself (``fewshot_course.data.augment
.distort``), all with its label, and the wrapped method is fitted on the enlarged support set.
With ``augment_queries`` each query is also scored as the average of its log-probabilities over
the same number of distorted versions (test-time augmentation), which smooths out a prediction
that hinges on one unlucky pixel.

Nothing is learned here: the wrapper changes how a method sees one task, not its weights, so any
trained ProtoNet, MAML or fine-tuned encoder can be wrapped at evaluation time. It costs
``copies + 1`` times the method's fit and predict.
"""

from __future__ import annotations

import numpy as np
import torch

from fewshot_course.data.augment import distort
from fewshot_course.methods.base import FewShotClassifier, check_support


class AugmentedEpisodes(FewShotClassifier):
    """``method`` fitted on the support set plus ``copies`` distorted versions of every image.

    Args:
        method: a fitted-per-task ``FewShotClassifier`` (ProtoNet, MAMLClassifier, FineTune, ...).
        copies: distorted versions added per support image (0: the method unchanged).
        strength: ``distort``'s strength (0.5 is a modest slant, size and stroke change).
        augment_queries: also average the query log-probabilities over ``copies`` distortions.
        seed: seeds the distortions, so an evaluation is repeatable.

    ``fit`` sees support_x [(copies+1)*S, C, H, W] with support_y repeated; ``predict`` returns
    [Q, N] logits (log-probabilities when queries are augmented).
    """

    def __init__(self, method: FewShotClassifier, *, copies: int = 8, strength: float = 0.5,
                 augment_queries: bool = True, seed: int = 0) -> None:
        super().__init__()
        if copies < 0:
            raise ValueError(f"copies = {copies}; use 0 or more distorted copies per image")
        self.method, self.copies, self.strength = method, copies, strength
        self.augment_queries = augment_queries
        self.rng = np.random.default_rng(seed)

    def _with_copies(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> [(copies+1)*B, C, H, W]: the originals first, then each copy."""
        device = x.device
        originals = x.cpu()
        copies = [distort(originals, self.rng, self.strength) for _ in range(self.copies)]
        return torch.cat([originals, *copies]).to(device)

    def fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> AugmentedEpisodes:
        check_support(support_y)
        self.method.fit(self._with_copies(support_x), support_y.repeat(self.copies + 1))
        return self

    def predict(self, query_x: torch.Tensor) -> torch.Tensor:
        if not self.augment_queries or self.copies == 0:
            return self.method.predict(query_x)
        logits = self.method.predict(self._with_copies(query_x))  # [(copies+1)*Q, N]
        return logits.view(self.copies + 1, len(query_x), -1).log_softmax(dim=-1).mean(dim=0)
