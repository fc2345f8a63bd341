"""The sinusoid regression family of the MAML paper (Finn, Abbeel & Levine, ICML 2017, Sec. 5.1).

Every task is a sine wave y = A sin(x - phi) with amplitude A ~ U[0.1, 5.0] and phase
phi ~ U[0, pi]; its data points have x ~ U[-5, 5]. A learner sees K points of a new wave and must
predict the whole curve. A network pre-trained on all waves at once can only learn their average,
E[A sin(x - phi)] = -(2 E[A] / pi) cos x, about -1.62 cos x (phases in [0, pi] do not cancel), and
that single curve says nothing about the wave at hand; MAML learns an initialisation from which
one or a few gradient steps on the K points recover the wave: the paper's Figure 2, reproduced
by ``plot_adaptation``.

Tasks come as ``Episode``/``EpisodeBatch`` objects like the classification tasks do, with
x and y of shape [K, 1]; ``classes`` is empty, as regression has none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from fewshot_course.episodes import Episode, EpisodeBatch
from fewshot_course.maml import MAML
from fewshot_course.progress import progress


@dataclass(frozen=True)
class SinusoidTask:
    """One wave y = amplitude * sin(x - phase)."""

    amplitude: float
    phase: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.sin(x - self.phase)


class Sinusoid:
    """Sampler of sinusoid regression tasks with K support and Q query points each.

    Args:
        k_shot: K, support points per task (the paper uses 5, 10 or 20).
        q_query: Q, query points per task on which the adapted model is scored.
        amplitude, phase, x_range: the (low, high) ranges of the family.
        seed: seeds this sampler's own generator (None: drawn from torch's global generator).

    ``sample() -> Episode`` with support_x, support_y [K, 1] and query_x, query_y [Q, 1];
    ``sample_batch(B) -> EpisodeBatch`` with a leading task dimension B.
    """

    def __init__(self, k_shot: int = 10, q_query: int = 10, *,
                 amplitude: tuple[float, float] = (0.1, 5.0),
                 phase: tuple[float, float] = (0.0, math.pi),
                 x_range: tuple[float, float] = (-5.0, 5.0), seed: int | None = None):
        if k_shot < 1 or q_query < 1:
            raise ValueError(f"k_shot={k_shot}, q_query={q_query}: both must be >= 1")
        self.k_shot, self.q_query = k_shot, q_query
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def _uniform(self, low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=self.generator)

    def sample_task(self) -> SinusoidTask:
        """A random wave of the family."""
        return SinusoidTask(float(self._uniform(*self.amplitude, 1)),
                            float(self._uniform(*self.phase, 1)))

    def episode(self, task: SinusoidTask, k_shot: int | None = None,
                q_query: int | None = None) -> Episode:
        """K support and Q query points of ``task`` at random x."""
        k = self.k_shot if k_shot is None else k_shot
        q = self.q_query if q_query is None else q_query
        x = self._uniform(*self.x_range, k + q, 1)
        y = task(x)
        return Episode(x[:k], y[:k], x[k:], y[k:], classes=())

    def sample(self) -> Episode:
        return self.episode(self.sample_task())

    def sample_batch(self, batch_size: int) -> EpisodeBatch:
        return EpisodeBatch.stack([self.sample() for _ in range(batch_size)])

    def state_dict(self) -> dict:
        """The generator's position, so training can resume exactly."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def pretrain_regressor(model: nn.Module, family: Sinusoid, steps: int = 2000, *,
                       batch_size: int = 25, lr: float = 1e-3) -> nn.Module:
    """The paper's baseline: one regressor trained on points of all waves pooled together.

    Each step pools the support and query points of ``batch_size`` random tasks and takes an
    Adam step on the mean squared error. Returns ``model`` (trained in place).
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in progress(range(steps), desc="pre-train"):
        batch = family.sample_batch(batch_size)
        x = torch.cat([batch.support_x, batch.query_x], dim=1).flatten(0, 1)
        y = torch.cat([batch.support_y, batch.query_y], dim=1).flatten(0, 1)
        loss = F.mse_loss(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model


def adapted_predictions(maml: MAML, support_x: torch.Tensor, support_y: torch.Tensor,
                        x: torch.Tensor, steps: Sequence[int] = (0, 1, 10)
                        ) -> dict[int, torch.Tensor]:
    """Predictions [P, 1] at x [P, 1] after each number of inner steps on the support points.

    Uses ``maml``'s own inner loop (its step size and MSE loss); 0 steps is the initialisation.
    """
    with torch.no_grad():
        return {s: maml.predict(maml.adapt(support_x, support_y, steps=s), x) for s in steps}


def plot_adaptation(maml: MAML, pretrained: nn.Module, task: SinusoidTask | None = None, *,
                    k_shot: int = 10, steps: Sequence[int] = (0, 1, 10),
                    pretrained_lr: float | None = None, seed: int = 0) -> Figure:
    """The MAML paper's Figure 2: MAML and a pre-trained regressor after 0, 1 and 10 steps.

    Args:
        maml: a meta-trained ``MAML(MLP(...), loss="mse")``.
        pretrained: a regressor trained on all waves pooled (``pretrain_regressor``).
        task: the wave to adapt to (a random one of the family, from ``seed``, when None).
        k_shot: K support points, drawn with ``seed``.
        steps: numbers of gradient steps to show.
        pretrained_lr: step size for fine-tuning the pre-trained regressor (MAML's by default).

    Returns a Figure with two panels (MAML left, pre-trained right), each with the true wave,
    the K points and one curve per number of steps. It is not registered with pyplot, so a
    notebook shows it once, as the cell's value (or with ``display(figure)``).
    """
    family = Sinusoid(k_shot, 1, seed=seed)
    task = family.sample_task() if task is None else task
    episode = family.episode(task)
    baseline = MAML(pretrained, inner_lr=maml.inner_lr if pretrained_lr is None else pretrained_lr,
                    loss="mse")
    x = torch.linspace(*family.x_range, 200).unsqueeze(1)
    figure = Figure(figsize=(11, 4), layout="tight")
    axes = figure.subplots(1, 2, sharey=True)
    for ax, learner, title in ((axes[0], maml, "MAML"), (axes[1], baseline, "pre-trained")):
        ax.plot(x, task(x), color="black", linewidth=2, label="ground truth")
        for count, prediction in adapted_predictions(learner, episode.support_x,
                                                     episode.support_y, x, steps).items():
            label = "before adaptation" if count == 0 else (
                f"after {count} grad step{'s' if count > 1 else ''}")
            ax.plot(x, prediction, linestyle="--" if count == 0 else "-", label=label)
        ax.scatter(episode.support_x, episode.support_y, marker="^", color="tab:purple",
                   zorder=3, label=f"{k_shot} support points")
        ax.set_title(f"{title}, K = {k_shot}")
        ax.set_xlabel("x")
        ax.legend(fontsize="small")
    axes[0].set_ylabel("y")
    figure.suptitle(f"Adapting to y = {task.amplitude:.2f} sin(x - {task.phase:.2f})")
    return figure
