"""The few-shot classifiers: each computes what its paper says, behind the common interface."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from torch import nn

from fewshot_course.episodes import Episode, EpisodeBatch
from fewshot_course.maml import MAML
from fewshot_course.methods import (
    METHODS,
    DistributionCalibration,
    FineTune,
    MAMLClassifier,
    NearestNeighbour,
    ProtoNet,
    build_method,
    fit_linear_head,
)
from fewshot_course.models import Conv4


def images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_protonet_logits_are_minus_squared_distances_to_class_means():
    torch.manual_seed(0)
    net = ProtoNet(Conv4(hidden=8).features)
    support_x, query_x = images(6, 1), images(4, 2)
    support_y = torch.tensor([0, 0, 0, 1, 2, 2])  # imbalanced: 3, 1 and 2 shots
    logits = net.fit(support_x, support_y).predict(query_x)

    support, query = net.encoder(support_x), net.encoder(query_x)
    expected = torch.empty(4, 3)
    for n in range(3):
        prototype = support[support_y == n].mean(dim=0)
        for q in range(4):
            expected[q, n] = -((query[q] - prototype) ** 2).sum()
    assert logits.shape == (4, 3)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_protonet_meta_loss_is_query_cross_entropy_and_trains_the_encoder():
    torch.manual_seed(0)
    net = ProtoNet(Conv4(hidden=8).features)
    episodes = [Episode(images(3, s), torch.tensor([0, 1, 2]), images(6, s + 10),
                        torch.tensor([0, 0, 1, 1, 2, 2]), (0, 1, 2)) for s in range(2)]
    loss, accuracy = net.meta_loss(EpisodeBatch.stack(episodes))
    expected = torch.stack([
        nn.functional.cross_entropy(net.fit(e.support_x, e.support_y).predict(e.query_x),
                                    e.query_y) for e in episodes]).mean()
    torch.testing.assert_close(loss, expected)
    assert 0 <= float(accuracy) <= 1
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_protonet_margin_scales_the_true_class_distance_in_the_loss_only():
    torch.manual_seed(0)
    plain = ProtoNet(Conv4(hidden=8).features)
    margined = ProtoNet(plain.encoder, margin=0.25)
    episode = Episode(images(3, 0), torch.tensor([0, 1, 2]), images(6, 10),
                      torch.tensor([0, 0, 1, 1, 2, 2]), (0, 1, 2))
    batch = EpisodeBatch.stack([episode])
    distances = -plain.fit(episode.support_x, episode.support_y).predict(episode.query_x)
    # Softmax of -d_n^2, with the true class's d^2 counted 1.25 times, by hand.
    true_distance = 1.25 * distances[torch.arange(6), episode.query_y]
    others = distances.clone()
    others[torch.arange(6), episode.query_y] = true_distance
    expected = (true_distance + torch.logsumexp(-others, dim=1)).mean()
    loss, accuracy = margined.meta_loss(batch)
    torch.testing.assert_close(loss, expected)
    assert loss.item() > plain.meta_loss(batch)[0].item()  # asks for more than the right answer
    assert accuracy.item() == plain.meta_loss(batch)[1].item()
    torch.testing.assert_close(margined.fit(episode.support_x, episode.support_y)
                               .predict(episode.query_x), -distances)
    built = build_method("protonet", hidden=8, margin=0.25)
    assert built.margin == 0.25 and built.config["margin"] == 0.25
    assert "margin" not in build_method("protonet", hidden=8).config  # older configs match
    with pytest.raises(ValueError, match=">= 0"):
        ProtoNet(nn.Flatten(), margin=-0.1)
    with pytest.raises(ValueError, match="'maml' has none"):
        build_method("maml", margin=0.25)


def test_a_support_set_missing_a_class_is_refused_with_the_class_named():
    net = ProtoNet(nn.Flatten())
    with pytest.raises(ValueError, match=r"classes \[1\] have none"):
        net.fit(images(2, 0), torch.tensor([0, 2]))


def test_nearest_neighbour_on_pixels_agrees_with_scikit_learn():
    support_x, query_x = images(10, 3), images(7, 4)
    support_y = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 2, 2])
    logits = NearestNeighbour().fit(support_x, support_y).predict(query_x)
    reference = KNeighborsClassifier(n_neighbors=1).fit(
        support_x.flatten(1).numpy(), support_y.numpy()).predict(query_x.flatten(1).numpy())
    assert logits.argmax(dim=1).tolist() == reference.tolist()
    distances = torch.cdist(query_x.flatten(1).double(), support_x.flatten(1).double()) ** 2
    nearest_of_class_2 = distances[:, support_y == 2].min(dim=1).values
    torch.testing.assert_close(logits[:, 2].double(), -nearest_of_class_2, rtol=1e-5, atol=1e-4)


def test_linear_head_is_l2_regularised_multinomial_logistic_regression():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(40, 5, generator=generator, dtype=torch.float64)
    labels = torch.arange(4).repeat(10)
    features += 1.5 * torch.nn.functional.one_hot(labels, 5).double()
    weight_decay = 1e-2
    weight, bias = fit_linear_head(features, labels, 4, weight_decay=weight_decay, max_iter=500)
    # Ours: mean cross-entropy + wd * ||W||^2; scikit-learn: C * sum cross-entropy + ||W||^2 / 2.
    reference = LogisticRegression(C=1 / (2 * weight_decay * len(labels)), tol=1e-10,
                                   max_iter=10_000).fit(features.numpy(), labels.numpy())
    ours = torch.softmax(features @ weight.T + bias, dim=1).numpy()
    np.testing.assert_allclose(ours, reference.predict_proba(features.numpy()), atol=1e-4)


def test_finetune_pretrains_on_dataset_class_ids_then_fits_a_new_head():
    torch.manual_seed(0)
    method = FineTune(nn.Flatten(), feature_dim=28 * 28, n_base_classes=10)
    episode = Episode(images(2, 5), torch.tensor([0, 1]), images(2, 6), torch.tensor([0, 1]),
                      classes=(7, 3))
    loss, _ = method.meta_loss(EpisodeBatch.stack([episode]))
    logits_s = method.base_head(episode.support_x.flatten(1))
    logits_q = method.base_head(episode.query_x.flatten(1))
    target = torch.tensor([7, 3])
    expected = (nn.functional.cross_entropy(logits_s, target)
                + nn.functional.cross_entropy(logits_q, target)) / 2
    torch.testing.assert_close(loss, expected)

    with pytest.raises(ValueError, match="n_base_classes=10"):
        method.meta_loss(EpisodeBatch(episode.support_x[None], episode.support_y[None],
                                      episode.query_x[None], episode.query_y[None], ((12, 3),)))

    # A new 2-way head on the support set: each support image is classified as its own class.
    logits = method.fit(episode.support_x, episode.support_y).predict(episode.support_x)
    assert logits.shape == (2, 2) and logits.argmax(dim=1).tolist() == [0, 1]
    assert set(dict(method.named_parameters())) == {"base_head.weight", "base_head.bias"}


def base_statistics(n_classes: int, dim: int, seed: int):
    """Synthetic base classes sharing one anisotropic covariance: large variance along 2 axes."""
    generator = torch.Generator().manual_seed(seed)
    means = 3 * torch.randn(n_classes, dim, generator=generator)
    scales = torch.tensor([3.0, 3.0] + [0.3] * (dim - 2))
    return means, scales


def test_distribution_calibration_mean_and_covariance_follow_the_paper():
    means, scales = base_statistics(6, 4, seed=0)
    covariances = torch.diag(scales**2).expand(6, 4, 4).clone()
    covariances[1] *= 2
    method = DistributionCalibration(nn.Identity(), means, covariances, k=2, alpha=0.2,
                                     tukey_lambda=1.0, seed=0)
    feature = means[1] + 0.1  # nearest base classes: 1, then whichever is next
    mean, covariance = method.calibrate(feature)
    nearest = (means - feature).norm(dim=1).argsort()[:2]
    assert nearest[0] == 1
    torch.testing.assert_close(mean, (means[nearest].sum(0) + feature) / 3)
    torch.testing.assert_close(covariance, covariances[nearest].mean(0) + 0.2 * torch.eye(4))

    samples = method.sample(feature, 20_000)
    torch.testing.assert_close(samples.mean(0), mean, atol=0.05, rtol=0)
    torch.testing.assert_close(samples.T.cov(), covariance, atol=0.5, rtol=0)  # ~3.5 s.e.


def test_distribution_calibration_beats_the_plain_head_in_one_shot():
    """Sampling with the base classes' spread teaches the head which directions are noise."""
    dim, n_base = 6, 30
    means, scales = base_statistics(n_base + 50, dim, seed=1)
    generator = torch.Generator().manual_seed(2)

    def draw(class_means: torch.Tensor, per_class: int):
        labels = torch.arange(len(class_means)).repeat_interleave(per_class)
        noise = torch.randn(len(labels), dim, generator=generator) * scales
        return class_means[labels] + noise, labels

    base_x, base_y = draw(means[:n_base], 200)
    base_means = torch.stack([base_x[base_y == c].mean(0) for c in range(n_base)])
    base_covariances = torch.stack([base_x[base_y == c].T.cov() for c in range(n_base)])
    calibrated = DistributionCalibration(nn.Identity(), base_means, base_covariances, k=2,
                                         alpha=0.05, samples_per_class=100, tukey_lambda=1.0)
    plain_accuracy, calibrated_accuracy = [], []
    for episode in range(6):
        novel = means[n_base + 5 * episode: n_base + 5 * episode + 5]
        support_x, support_y = draw(novel, 1)
        query_x, query_y = draw(novel, 20)
        calibrated_accuracy.append(
            (calibrated.fit(support_x, support_y).predict(query_x).argmax(1) == query_y)
            .float().mean())
        weight, bias = fit_linear_head(support_x, support_y, 5)
        plain_accuracy.append(((query_x @ weight.T + bias).argmax(1) == query_y).float().mean())
    plain, ours = torch.stack(plain_accuracy).mean(), torch.stack(calibrated_accuracy).mean()
    assert ours > plain + 0.05, (float(plain), float(ours))


def test_distribution_calibration_from_a_dataset_uses_its_classes():
    class Tiny:
        labels = torch.tensor([0, 0, 0, 1, 1, 1])
        data = torch.tensor([[1.0, 4.0], [1.0, 5.0], [1.0, 6.0], [9.0, 0.0], [9.0, 1.0],
                             [9.0, 2.0]])

        def __len__(self):
            return 6

        def __getitem__(self, i):
            return self.data[i], int(self.labels[i])

    method = DistributionCalibration.from_dataset(nn.Identity(), Tiny(), chunk_size=4, k=1)
    transformed = Tiny.data.sqrt()  # Tukey's transform with the paper's lambda = 0.5
    torch.testing.assert_close(method.base_means,
                               torch.stack([transformed[:3].mean(0), transformed[3:].mean(0)]))
    torch.testing.assert_close(method.base_covariances[1], transformed[3:].T.cov())
    with pytest.raises(ValueError, match="non-negative"):
        method.features(torch.tensor([[-1.0, 0.0]]))


def test_maml_classifier_is_maml_adapt_then_predict():
    torch.manual_seed(0)
    maml = MAML(Conv4(n_way=3, hidden=8), inner_lr=0.1, inner_steps=2)
    method = MAMLClassifier(maml)
    support_x, support_y, query_x = images(3, 7), torch.tensor([0, 1, 2]), images(4, 8)
    with torch.no_grad():
        logits = method.fit(support_x, support_y).predict(query_x)
        expected = maml.predict(maml.adapt(support_x, support_y), query_x)
    torch.testing.assert_close(logits, expected)
    assert not torch.equal(logits, maml.model(query_x))  # the inner loop changed the weights

    with pytest.raises(ValueError, match="n_way=4"):
        method.fit(images(4, 9), torch.tensor([0, 1, 2, 3]))


@pytest.mark.parametrize("name", METHODS)
def test_every_method_builds_by_name_and_classifies_an_episode(name):
    torch.manual_seed(0)
    method = build_method(name, n_way=3, hidden=8, n_base_classes=5)
    assert method.config["method"] == name
    with torch.no_grad():
        logits = method.fit(images(6, 0), torch.tensor([0, 1, 2, 0, 1, 2])).predict(images(5, 1))
    assert logits.shape == (5, 3) and torch.isfinite(logits).all()


def test_unknown_method_names_the_choices():
    with pytest.raises(ValueError, match="protonet"):
        build_method("siamese")
