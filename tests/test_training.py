"""Training: seeded runs repeat exactly, checkpoints resume exactly, divergence stops loudly."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import REPO_ROOT
from fewshot_course.data import EpisodeSampler, ImageDataset
from fewshot_course.evaluation import evaluate
from fewshot_course.maml import MAML
from fewshot_course.methods import ProtoNet, build_method
from fewshot_course.models import MLP
from fewshot_course.tasks import Sinusoid
from fewshot_course.training import (
    History,
    load_checkpoint,
    load_pretrained,
    read_checkpoint,
    shipped_checkpoint,
    train,
)


def shapes_dataset(n_classes: int = 12, per_class: int = 5) -> ImageDataset:
    generator = torch.Generator().manual_seed(0)
    patterns = (torch.rand(n_classes, 1, 16, 16, generator=generator) > 0.6).float()
    images = patterns.repeat_interleave(per_class, 0)
    images = (images + 0.5 * torch.rand(images.shape, generator=generator)).clamp(0, 1)
    return ImageDataset(images, torch.arange(n_classes).repeat_interleave(per_class),
                        [str(c) for c in range(n_classes)])


def protonet_run(dataset, steps: int, **kwargs):
    torch.manual_seed(0)
    method = build_method("protonet", hidden=4, image_size=16)
    history = train(method, EpisodeSampler(dataset, 3, 1, 2, seed=0), steps, meta_batch=2,
                    lr=1e-2, device="cpu", **kwargs)
    return method, history


def assert_same_predictions(a, b, dataset) -> None:
    """Two fitted-on-the-same-support methods give the same query logits on an episode."""
    episode = EpisodeSampler(dataset, 3, 1, 2, seed=4).sample()
    with torch.no_grad():
        torch.testing.assert_close(
            a.fit(episode.support_x, episode.support_y).predict(episode.query_x),
            b.fit(episode.support_x, episode.support_y).predict(episode.query_x))


def test_a_seeded_run_reproduces_its_accuracy_exactly():
    dataset = shapes_dataset()
    results = []
    for _ in range(2):
        method, history = protonet_run(dataset, 4)
        test = evaluate(method, EpisodeSampler(dataset, 3, 1, 2, seed=5), 10, device="cpu")
        results.append((history.loss, history.accuracy, test.accuracies,
                        [p.clone() for p in method.parameters()]))
    (loss_a, acc_a, test_a, weights_a), (loss_b, acc_b, test_b, weights_b) = results
    assert loss_a == loss_b and acc_a == acc_b and test_a == test_b
    assert all(torch.equal(a, b) for a, b in zip(weights_a, weights_b, strict=True))
    assert loss_a[0] != loss_a[-1]  # it did train


def test_training_on_the_cpu_tunes_the_allocator_first(monkeypatch):
    import fewshot_course.training as training

    calls = []
    monkeypatch.setattr(training, "tune_allocator", lambda: calls.append("tuned") or True)
    protonet_run(shapes_dataset(), 1)
    assert calls == ["tuned"]


def test_resuming_a_checkpoint_continues_exactly_like_an_uninterrupted_run(tmp_path):
    dataset = shapes_dataset()
    straight, straight_history = protonet_run(dataset, 6, checkpoint=tmp_path / "a.pt",
                                              checkpoint_every=3)
    _, first_half = protonet_run(dataset, 3, checkpoint=tmp_path / "b.pt")
    assert first_half.steps == [1, 2, 3]
    # A new process would rebuild everything from scratch: fresh model, fresh sampler.
    resumed, resumed_history = protonet_run(dataset, 6, checkpoint=tmp_path / "b.pt")

    assert resumed_history.loss == straight_history.loss
    assert resumed_history.steps == list(range(1, 7))
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    saved_a, saved_b = read_checkpoint(tmp_path / "a.pt"), read_checkpoint(tmp_path / "b.pt")
    assert saved_a["step"] == saved_b["step"] == 6
    assert saved_a["config"]["train"] == {"lr": 1e-2, "meta_batch": 2, "seed": 0, "steps": 6}
    for a, b in zip(saved_a["optimizer"]["state"].values(),
                    saved_b["optimizer"]["state"].values(), strict=True):
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])


def test_resuming_a_sampler_with_state_and_a_maml_regressor(tmp_path):
    def run(steps, path):
        torch.manual_seed(1)
        maml = MAML(MLP((1, 8, 1)), inner_lr=0.01, loss="mse")
        history = train(maml, Sinusoid(5, 5, seed=3), steps, meta_batch=4, device="cpu",
                        checkpoint=path)
        return maml, history

    straight, history = run(4, tmp_path / "straight.pt")
    run(2, tmp_path / "interrupted.pt")
    resumed, resumed_history = run(4, tmp_path / "interrupted.pt")
    assert resumed_history.loss == history.loss
    assert all(torch.equal(a, b) for a, b in zip(straight.parameters(), resumed.parameters(),
                                                   strict=True))


def test_resuming_with_other_settings_is_refused(tmp_path):
    dataset = shapes_dataset()
    protonet_run(dataset, 2, checkpoint=tmp_path / "c.pt")
    with pytest.raises(ValueError, match=r"lr: saved 0.01, now 0.5"):
        train(build_method("protonet", hidden=4, image_size=16),
              EpisodeSampler(dataset, 3, 1, 2, seed=0), 4, meta_batch=2, lr=0.5, device="cpu",
              checkpoint=tmp_path / "c.pt")


class PoisonedEncoder(nn.Module):
    """A working encoder whose output turns to NaN from its ``poisoned_call``-th call on."""

    def __init__(self, poisoned_call: int):
        super().__init__()
        self.linear = nn.Linear(16 * 16, 8)
        self.calls, self.poisoned_call = 0, poisoned_call

    def forward(self, x):
        self.calls += 1
        out = self.linear(x.flatten(1))
        return out * float("nan") if self.calls >= self.poisoned_call else out


def test_a_nan_loss_stops_training_with_an_error_naming_the_step():
    method = ProtoNet(PoisonedEncoder(poisoned_call=9))  # 4 calls per step: support and query x2
    with pytest.raises(FloatingPointError, match="nan at step 3"):
        train(method, EpisodeSampler(shapes_dataset(), 3, 1, 2, seed=0), 10, meta_batch=2,
              device="cpu")


def test_validation_and_load_checkpoint_rebuild_the_trained_method(tmp_path):
    dataset = shapes_dataset()
    method, history = protonet_run(dataset, 4, checkpoint=tmp_path / "d.pt",
                                   val_sampler=EpisodeSampler(dataset, 3, 1, 2, seed=9),
                                   val_every=2, val_episodes=4)
    assert isinstance(history, History)
    assert [step for step, _, _ in history.validation] == [2, 4]
    loaded = load_checkpoint(tmp_path / "d.pt", device="cpu")
    assert isinstance(loaded, ProtoNet) and loaded.config == method.config
    assert_same_predictions(loaded, method, dataset)


def test_a_checkpoint_rebuilds_a_protonet_with_a_global_max_pool_and_a_5x5_first_kernel(
        tmp_path):
    dataset = shapes_dataset()
    torch.manual_seed(0)
    method = build_method("protonet", hidden=4, image_size=16, global_max_pool=True,
                          first_kernel=5)
    assert build_method("protonet").config.keys() < method.config.keys()  # older configs match
    train(method, EpisodeSampler(dataset, 3, 1, 2, seed=0), 2, meta_batch=2, device="cpu",
          checkpoint=tmp_path / "pooled.pt")
    loaded = load_checkpoint(tmp_path / "pooled.pt", device="cpu")
    assert loaded.config == method.config
    assert isinstance(loaded.encoder[4], torch.nn.AdaptiveMaxPool2d)
    assert loaded.encoder[0].conv.kernel_size == (5, 5)
    assert_same_predictions(loaded, method, dataset)


def test_a_checkpoint_rebuilds_a_protonet_with_its_training_margin(tmp_path):
    dataset = shapes_dataset()
    torch.manual_seed(0)
    method = build_method("protonet", hidden=4, image_size=16, margin=0.25)
    train(method, EpisodeSampler(dataset, 3, 1, 2, seed=0), 2, meta_batch=2, device="cpu",
          checkpoint=tmp_path / "margin.pt")
    loaded = load_checkpoint(tmp_path / "margin.pt", device="cpu")
    assert loaded.config == method.config and loaded.margin == 0.25
    assert_same_predictions(loaded, method, dataset)


def test_a_cpu_budget_stops_training_at_a_checkpoint_that_a_larger_budget_continues(tmp_path):
    dataset = shapes_dataset()
    path = tmp_path / "budget.pt"
    _, history = protonet_run(dataset, 5, checkpoint=path, max_cpu_minutes=1e-9)
    assert history.steps == [1] and read_checkpoint(path)["step"] == 1
    assert history.cpu_seconds > 0
    _, again = protonet_run(dataset, 5, checkpoint=path, max_cpu_minutes=1e-9)
    assert again.steps == [1]  # the budget is spent: no further step
    _, finished = protonet_run(dataset, 5, checkpoint=path)
    _, straight = protonet_run(dataset, 5)
    assert finished.steps == [1, 2, 3, 4, 5] and finished.loss == straight.loss
    assert finished.cpu_seconds > history.cpu_seconds


def test_a_cosine_schedule_anneals_the_learning_rate_over_the_run(tmp_path):
    dataset = shapes_dataset()
    path = tmp_path / "cosine.pt"
    cosine, _ = protonet_run(dataset, 4, checkpoint=path, lr_schedule="cosine")
    constant, _ = protonet_run(dataset, 4)
    # the last of 4 steps ran at lr * (1 + cos(pi * 3/4)) / 2, the first at the full lr
    (group,) = read_checkpoint(path)["optimizer"]["param_groups"]
    assert group["lr"] == pytest.approx(1e-2 * 0.5 * (1 + math.cos(math.pi * 3 / 4)))
    assert not all(torch.equal(a, b) for a, b in zip(cosine.parameters(), constant.parameters(),
                                                     strict=True))
    with pytest.raises(ValueError, match="steps: saved 4, now 8"):
        protonet_run(dataset, 8, checkpoint=path, lr_schedule="cosine")
    with pytest.raises(ValueError, match="lr_schedule='linear'"):
        protonet_run(dataset, 2, lr_schedule="linear")


@pytest.mark.parametrize("name, kind", [("maml-glyphs-5w1s", "MAMLClassifier"),
                                        ("protonet-glyphs", "ProtoNet"),
                                        ("finetune-glyphs", "FineTune")])
def test_the_shipped_checkpoints_are_small_documented_and_ready_to_classify(name, kind):
    path = shipped_checkpoint(name)
    assert path.stat().st_size < 1_000_000
    record = read_checkpoint(path)
    command = record["config"]["run"]["command"]
    assert command.startswith("python -m fewshot_course train ")
    arguments = command.split(" train ", 1)[1]
    assert arguments in (REPO_ROOT / "fewshot_course" / "checkpoints" / "README.md").read_text()
    assert record["step"] == record["config"]["train"]["steps"]  # trained to the end

    method = load_pretrained(name, device="cpu")
    assert type(method).__name__ == kind
    episode = EpisodeSampler(shapes_dataset(), 5, 1, 2, seed=0).sample()
    images = torch.nn.functional.interpolate(episode.support_x, size=28)
    with torch.no_grad():
        logits = method.fit(images, episode.support_y).predict(images)
    assert logits.shape == (5, 5) and torch.isfinite(logits).all()
    with pytest.raises(FileNotFoundError, match="available"):
        shipped_checkpoint("no-such-model")


def test_a_zero_head_maml_checkpoint_rebuilds_with_its_test_settings(tmp_path):
    dataset = shapes_dataset()
    torch.manual_seed(0)
    method = build_method("maml", n_way=3, hidden=4, image_size=16, test_steps=3,
                          zero_head=True, test_inner_lr=0.05)
    assert build_method("maml").config.keys() < method.config.keys()  # older configs still match
    train(method, EpisodeSampler(dataset, 3, 1, 2, seed=0), 2, meta_batch=2, device="cpu",
          checkpoint=tmp_path / "z.pt")
    head_gradient = method.maml.model.head.weight.grad  # the head is not meta-learned
    assert head_gradient is None or not head_gradient.any()
    loaded = load_checkpoint(tmp_path / "z.pt", device="cpu")
    assert loaded.config == method.config and loaded.test_inner_lr == 0.05
    assert loaded.maml.zero_init == ("head.weight", "head.bias")
    assert_same_predictions(loaded, method, dataset)


def test_an_any_way_maml_trains_on_one_n_and_is_tested_on_another(tmp_path):
    dataset = shapes_dataset()
    torch.manual_seed(0)
    method = build_method("maml", n_way=3, hidden=4, image_size=16, zero_head=True,
                          any_way=True)
    train(method, EpisodeSampler(dataset, 6, 1, 1, seed=0), 2, meta_batch=2, device="cpu",
          checkpoint=tmp_path / "any.pt")
    loaded = load_checkpoint(tmp_path / "any.pt", device="cpu")
    assert loaded.config == method.config and loaded.maml.any_way
    episode = EpisodeSampler(dataset, 5, 1, 2, seed=3).sample()
    with torch.no_grad():
        logits = loaded.fit(episode.support_x, episode.support_y).predict(episode.query_x)
    assert logits.shape == (10, 5)
    with pytest.raises(ValueError, match="has 5"):  # without any_way the head's 3 rows limit N
        build_method("maml", n_way=3, hidden=4, image_size=16, zero_head=True).fit(
            episode.support_x, episode.support_y)
    with pytest.raises(ValueError, match="zero_head=True"):
        build_method("maml", any_way=True)


def test_bfloat16_mixed_precision_keeps_float32_weights_and_is_part_of_the_settings(tmp_path):
    dataset = shapes_dataset()
    path = tmp_path / "bf16.pt"
    mixed, mixed_history = protonet_run(dataset, 3, checkpoint=path, precision="bfloat16")
    full, full_history = protonet_run(dataset, 3)
    assert all(p.dtype == torch.float32 for p in mixed.parameters())
    # from the same weights, the first loss in bfloat16 is close to float32's but not equal
    assert mixed_history.loss[0] != full_history.loss[0]
    assert mixed_history.loss[0] == pytest.approx(full_history.loss[0], rel=0.01)
    assert read_checkpoint(path)["config"]["train"]["precision"] == "bfloat16"
    with pytest.raises(ValueError, match="precision: saved 'bfloat16', now 'float32'"):
        protonet_run(dataset, 4, checkpoint=path)
    with pytest.raises(ValueError, match="precision='float16'"):
        protonet_run(dataset, 2, precision="float16")


def test_protonet_compares_bfloat16_embeddings_in_float32():
    torch.manual_seed(0)
    method = build_method("protonet", hidden=8, image_size=16)
    episode = EpisodeSampler(shapes_dataset(), 3, 1, 2, seed=0).sample()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = method.fit(episode.support_x, episode.support_y).predict(episode.query_x)
        embeddings = method.embed(episode.query_x)
    assert logits.dtype == embeddings.dtype == torch.float32
    full = method.fit(episode.support_x, episode.support_y).predict(episode.query_x)
    torch.testing.assert_close(logits, full, rtol=0.05, atol=0.05)


def test_second_order_maml_trains_in_bfloat16():
    torch.manual_seed(0)
    dataset = shapes_dataset()
    method = build_method("maml", n_way=3, hidden=4, image_size=16, zero_head=True)
    history = train(method, EpisodeSampler(dataset, 3, 1, 2, seed=0), 3, meta_batch=2,
                    device="cpu", precision="bfloat16")
    assert all(math.isfinite(loss) for loss in history.loss)
    assert all(p.dtype == torch.float32 for p in method.parameters())
