"""A generative method: distribution calibration (Yang, Liu & Xu, "Free Lunch for Few-shot
Learning: Distribution Calibration", ICLR 2021).

Why this one. One support example says almost nothing about the spread of its class, but classes
that look alike vary alike. Distribution calibration borrows that spread from the base classes:
it models each novel class as a Gaussian in feature space whose mean and covariance are calibrated
with the statistics of the k nearest base classes, samples extra features from it, and trains an
ordinary logistic regression on the real plus the sampled features. It is the simplest well-cited
member of the "hallucinate more training data" family: no generator network to train, no extra
parameters, it works on top of any frozen encoder (here a trained ProtoNet or FineTune encoder),
and each step is a formula a student can check.

For a support feature x (after Tukey's power transform x -> x^lambda, which makes skewed,
non-negative features more Gaussian), with base-class means mu_i and covariances Sigma_i:

    S        = the k base classes whose means are nearest to x (Euclidean)
    mu'      = (sum_{i in S} mu_i + x) / (k + 1)
    Sigma'   = (sum_{i in S} Sigma_i) / k + alpha * I

Two deliberate choices, both documented here because the reference code differs:
the base statistics are computed in the same Tukey-transformed space as the support features, so
distances and means compare like with like; and alpha widens the covariance on its diagonal
(alpha * I), the reading of "alpha sets the dispersion" that keeps Sigma' positive definite.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewshot_course.methods.base import FewShotClassifier, check_support, fit_linear_head


def tukey(features: torch.Tensor, lam: float) -> torch.Tensor:
    """Tukey's ladder of powers: x^lam for lam != 0, log(x) for lam = 0 (features must be >= 0)."""
    if lam == 1:
        return features
    if (features < 0).any():
        raise ValueError("Tukey's transform needs non-negative features (for example ReLU "
                         "outputs); pass tukey_lambda=1.0 to switch it off")
    return torch.log(features) if lam == 0 else features.pow(lam)


class DistributionCalibration(FewShotClassifier):
    """Support-set augmentation by calibrated Gaussians, then a logistic-regression head.

    Args:
        encoder: frozen feature extractor, [B, C, H, W] -> [B, ...] flattened to [B, D].
        base_means: [C_base, D] per-base-class feature means (Tukey-transformed space).
        base_covariances: [C_base, D, D] per-base-class feature covariances (same space).
        k: number of nearest base classes that calibrate each support feature (paper: 2).
        alpha: extra variance on the calibrated covariance's diagonal.
        samples_per_class: sampled features per class, split evenly over its support examples
            (the paper samples 750 per class).
        tukey_lambda: exponent of Tukey's transform (0.5 in the paper; 1.0 switches it off).
        seed: seed of the sampler's own generator, so evaluation is repeatable.

    Build it from a base dataset with ``DistributionCalibration.from_dataset``.
    """

    def __init__(self, encoder: nn.Module, base_means: torch.Tensor,
                 base_covariances: torch.Tensor, *, k: int = 2, alpha: float = 0.21,
                 samples_per_class: int = 750, tukey_lambda: float = 0.5, seed: int = 0,
                 weight_decay: float = 1e-3):
        super().__init__()
        if not 1 <= k <= base_means.shape[0]:
            raise ValueError(f"k={k} nearest base classes requested but there are "
                             f"{base_means.shape[0]} base classes; choose 1 <= k <= "
                             f"{base_means.shape[0]}")
        if alpha <= 0:
            raise ValueError(f"alpha must be > 0 to keep the covariance invertible, got {alpha}")
        self.encoder = encoder
        self.register_buffer("base_means", base_means)
        self.register_buffer("base_covariances", base_covariances)
        self.k, self.alpha, self.tukey_lambda = k, alpha, tukey_lambda
        self.samples_per_class, self.weight_decay = samples_per_class, weight_decay
        self.generator = torch.Generator().manual_seed(seed)
        self._head: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    @torch.no_grad()
    def from_dataset(cls, encoder: nn.Module, dataset, *, chunk_size: int = 5, seed: int = 0,
                     **kwargs) -> DistributionCalibration:
        """Compute the base statistics from every image of ``dataset`` (the base classes).

        Images are embedded in random chunks of ``chunk_size`` mixed-class images: an encoder whose
        BatchNorm uses batch statistics sees batches as small as a support set, as when it is used.
        """
        labels = torch.as_tensor(dataset.labels)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
        parameter = next(iter(encoder.parameters()), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        lam = kwargs.get("tukey_lambda", 0.5)
        chunks = []
        for start in range(0, len(order), chunk_size):
            chunk = order[start:start + chunk_size]
            images = (dataset.images_at(chunk) if hasattr(dataset, "images_at")
                      else torch.stack([dataset[int(i)][0] for i in chunk]))
            chunks.append(tukey(encoder(images.to(device)).flatten(start_dim=1), lam).cpu())
        features = torch.cat(chunks).double()
        labels = labels[order]
        classes = labels.unique()
        means = torch.stack([features[labels == c].mean(dim=0) for c in classes])
        covariances = torch.stack([features[labels == c].T.cov() for c in classes])
        return cls(encoder, means.float().to(device), covariances.float().to(device), seed=seed,
                   **kwargs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Tukey-transformed embeddings [B, D] of images x [B, C, H, W]."""
        return tukey(self.encoder(x).flatten(start_dim=1), self.tukey_lambda)

    def calibrate(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated mean [D] and covariance [D, D] for one support feature [D]."""
        distances = (self.base_means - feature).norm(dim=1)
        nearest = distances.topk(self.k, largest=False).indices
        mean = (self.base_means[nearest].sum(dim=0) + feature) / (self.k + 1)
        eye = torch.eye(feature.shape[0], dtype=feature.dtype, device=feature.device)
        covariance = self.base_covariances[nearest].mean(dim=0) + self.alpha * eye
        return mean, covariance

    def sample(self, feature: torch.Tensor, n: int) -> torch.Tensor:
        """n features [n, D] drawn from the calibrated Gaussian of one support feature [D]."""
        mean, covariance = self.calibrate(feature)
        # Cholesky in float64: a covariance estimated from few base images is barely definite.
        cholesky = torch.linalg.cholesky(covariance.double())
        noise = torch.randn(n, feature.shape[0], generator=self.generator, dtype=torch.float64)
        return mean + (noise.to(feature.device) @ cholesky.T).to(feature.dtype)

    def fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> DistributionCalibration:
        n_way = check_support(support_y)
        with torch.no_grad():
            support = self.features(support_x)
        counts = torch.bincount(support_y, minlength=n_way)
        features, labels = [support], [support_y]
        for feature, label in zip(support, support_y, strict=True):
            n = -(-self.samples_per_class // int(counts[label]))  # ceil: per support example
            features.append(self.sample(feature, n))
            labels.append(label.expand(n))
        self._head = fit_linear_head(torch.cat(features), torch.cat(labels), n_way,
                                     weight_decay=self.weight_decay)
        return self

    def predict(self, query_x: torch.Tensor) -> torch.Tensor:
        if self._head is None:
            raise RuntimeError("call fit(support_x, support_y) before predict(query_x)")
        return F.linear(self.features(query_x), *self._head)
