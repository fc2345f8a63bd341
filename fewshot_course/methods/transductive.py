"""Transductive ProtoNet: prototypes refined with the episode's own unlabelled queries.

With one example per class a prototype is a single, noisy embedding. The queries of the same
episode are more examples of the same classes, only unlabelled, so they can pull each prototype
towards the middle of its class. One refinement step is a step of soft k-means (Ren et al.,
"Meta-Learning for Semi-Supervised Few-Shot Classification", ICLR 2018), here with the queries
themselves as the unlabelled set, as in transductive prototype rectification (Liu et al., ECCV
2020): weigh every query by its class probabilities w_qn = softmax_n(log p(n | q) / temperature),
then

    c_n <- (sum_{support i of class n} f(x_i) + sum_q w_qn f(q)) / (count_n + sum_q w_qn)

and score the queries against the new prototypes; repeat ``iterations`` times. The defaults, 10
steps at temperature 2, were the best of nine settings on real Omniglot with an alphabet held out
of meta-training for the purpose (benchmarks/RESULTS.md, "omniglot validation: transductive
settings"); a temperature above 1 softens the weights, so early mistakes pull less.

*Transductive* (直推式) means a query's prediction depends on the other queries it is tested with:
the same image can get another label in another episode. That is a different, easier protocol than
classifying each query on its own; report it as such, never beside inductive figures as if alike.
(Conv4's BatchNorm, which normalises with each call's batch statistics, already lets the queries
share a little information; this uses far more of it.)

With ``views`` > 1 the episode is also scored in its symmetric views (``SymmetricViews``), and
the views share one soft assignment per step, taken from their averaged log-probabilities: each
view refines its own prototypes with the evidence of all of them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshot_course.methods.base import PredictTimeMethod
from fewshot_course.methods.protonet import ProtoNet, prototypes, squared_distances
from fewshot_course.methods.symmetric import SYMMETRIES, check_views, symmetric_view


class TransductiveProtoNet(PredictTimeMethod):
    """``protonet`` with its prototypes refined by soft k-means over the query set.

    Args:
        protonet: a (meta-trained) ``ProtoNet``; its encoder is used as it is.
        iterations: refinement steps; 0 gives the plain (or view-averaged) log-probabilities.
        temperature: divides the log-probabilities before the softmax that weighs the queries;
            1 uses the probabilities the network was trained to give, above 1 softer ones.
        views: 1, 4 or 8 symmetric views of the episode (``SYMMETRIES``), as in
            ``SymmetricViews``.

    ``fit`` keeps the support set; ``predict(query_x)`` returns log-probabilities [Q, N] for the
    whole query set at once, which is what the refinement learns from.
    """

    def __init__(self, protonet: ProtoNet, *, iterations: int = 10, temperature: float = 2.0,
                 views: int = 1) -> None:
        super().__init__()
        if iterations < 0:
            raise ValueError(f"iterations = {iterations}; use 0 (no refinement) or more")
        if not temperature > 0:
            raise ValueError(f"temperature = {temperature}; it must be positive")
        check_views(views)
        self.protonet, self.iterations = protonet, iterations
        self.temperature, self.views = temperature, views

    def predict(self, query_x: torch.Tensor) -> torch.Tensor:
        support_x, support_y = self.kept_support()
        n_way = int(support_y.max()) + 1
        # Per view: support embeddings [S, D] and query embeddings [Q, D], embedded in separate
        # calls as ProtoNet does (its BatchNorm takes each call's own statistics).
        embedded = [(self.protonet.embed(symmetric_view(support_x, mirrored, turns)),
                     self.protonet.embed(symmetric_view(query_x, mirrored, turns)))
                    for mirrored, turns in SYMMETRIES[:self.views]]
        centres = [prototypes(support, support_y, n_way) for support, _ in embedded]
        one_hot = F.one_hot(support_y, n_way).to(centres[0].dtype)  # [S, N]
        for _ in range(self.iterations):
            weights = (self._log_probabilities(embedded, centres) / self.temperature).softmax(-1)
            counts = one_hot.sum(0) + weights.sum(0)  # [N]
            centres = [(one_hot.T @ support + weights.T @ queries) / counts[:, None]
                       for support, queries in embedded]
        return self._log_probabilities(embedded, centres)

    @staticmethod
    def _log_probabilities(embedded: list[tuple[torch.Tensor, torch.Tensor]],
                           centres: list[torch.Tensor]) -> torch.Tensor:
        """Query log-probabilities [Q, N], averaged over the views."""
        total = sum((-squared_distances(queries, view_centres)).log_softmax(-1)
                    for (_, queries), view_centres in zip(embedded, centres, strict=True))
        return total / len(centres)
