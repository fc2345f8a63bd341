"""MAML behind the common interface: ``fit`` runs the inner loop, ``predict`` the adapted model.

``fewshot_course.maml.MAML`` speaks in weights (``adapt -> params``, ``predict(params, x)``); this
adapter keeps the adapted weights of the current task so that evaluation, the CLI and the notebooks
can treat MAML exactly like ProtoNet or a baseline.
"""

from __future__ import annotations

import torch

from fewshot_course.episodes import EpisodeBatch
from fewshot_course.maml import MAML, Params
from fewshot_course.methods.base import FewShotClassifier, check_support


class MAMLClassifier(FewShotClassifier):
    """A ``MAML`` (second order, first order or Meta-SGD) as a ``FewShotClassifier``.

    Args:
        maml: the meta-learner; its model's head fixes the largest N it can classify (any N
            with ``any_way``).
        test_steps: inner steps when fitting a test task (``maml.inner_steps`` when None). The MAML
            paper, for example, trains Omniglot 5-way with 1 step and tests with 3.
        test_inner_lr: the step size when fitting a test task (``maml.inner_lr`` when None): more
            and smaller steps than in meta-training can fit a head that starts at zero further.
    """

    trainable = True

    def __init__(self, maml: MAML, *, test_steps: int | None = None,
                 test_inner_lr: float | None = None):
        super().__init__()
        self.maml = maml
        self.test_steps = test_steps
        self.test_inner_lr = test_inner_lr
        self._params: Params | None = None

    def fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> MAMLClassifier:
        n_way = check_support(support_y)
        head = getattr(self.maml.model, "head", None)
        if (head is not None and not self.maml.any_way
                and getattr(head, "out_features", n_way) < n_way):
            raise ValueError(f"this MAML model scores {head.out_features} classes but the support "
                             f"set has {n_way}; build (and meta-train) it with n_way={n_way}")
        self._params = self.maml.adapt(support_x, support_y, steps=self.test_steps,
                                       inner_lr=self.test_inner_lr)
        return self

    def predict(self, query_x: torch.Tensor) -> torch.Tensor:
        if self._params is None:
            raise RuntimeError("call fit(support_x, support_y) before predict(query_x)")
        return self.maml.predict(self._params, query_x)

    def meta_loss(self, batch: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return self.maml.meta_loss(batch)
