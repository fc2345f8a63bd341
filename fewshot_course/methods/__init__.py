"""Few-shot classifiers behind one interface: ``fit(support_x, support_y)``, ``predict(query_x)``.

* ``ProtoNet``: prototypes and squared Euclidean distances (meta-trained).
* ``DistributionCalibration``: the generative method, support features augmented by sampling from
  calibrated Gaussians, then logistic regression (on a frozen encoder).
* ``FineTune``: a classifier pre-trained on the base classes, a new head per task.
* ``NearestNeighbour``: 1-NN on raw pixels or embeddings.
* ``MAMLClassifier``: MAML, first-order MAML or Meta-SGD (``fewshot_course.maml``).
* ``AugmentedEpisodes``: any of them fitted on distorted copies of the support set too.
* ``SymmetricViews``: any of them scored on the episode turned and mirrored, views averaged.
* ``ShiftedViews``: any of them scored on the episode moved by a pixel, shifted views averaged.
* ``TransductiveProtoNet``: ProtoNet's prototypes refined with the episode's unlabelled queries
  (soft k-means; transductive, so reported apart).

``with_test_time`` applies the last four to a trained method in one call, as the benchmark does.

``build_method`` constructs any of them by name with a Conv4 backbone (the CLI and
``fewshot_course.training.load_checkpoint`` use it).
"""

from __future__ import annotations

from fewshot_course.maml import MAML
from fewshot_course.methods.augmented import AugmentedEpisodes
from fewshot_course.methods.base import FewShotClassifier, fit_linear_head
from fewshot_course.methods.baselines import FineTune, NearestNeighbour
from fewshot_course.methods.generative import DistributionCalibration
from fewshot_course.methods.maml_adapter import MAMLClassifier
from fewshot_course.methods.protonet import ProtoNet
from fewshot_course.methods.shifted import ShiftedViews
from fewshot_course.methods.symmetric import SymmetricViews
from fewshot_course.methods.test_time import with_test_time
from fewshot_course.methods.transductive import TransductiveProtoNet
from fewshot_course.models import Conv4

METHODS = ("maml", "fomaml", "metasgd", "protonet", "finetune", "nn")


def build_method(method: str, *, n_way: int = 5, hidden: int = 64, in_channels: int = 1,
                 image_size: int = 28, n_base_classes: int | None = None, inner_lr: float = 0.4,
                 inner_steps: int = 1, test_steps: int | None = None, zero_head: bool = False,
                 test_inner_lr: float | None = None, any_way: bool = False,
                 global_max_pool: bool = False, margin: float = 0.0,
                 first_kernel: int = 3) -> FewShotClassifier:
    """A freshly initialised method with a Conv4 backbone, by name (one of ``METHODS``).

    ``n_way`` sizes MAML's head; ``n_base_classes`` is required by ``finetune`` (its pre-training
    head classifies every base class); ``inner_lr``, ``inner_steps``, ``test_steps``,
    ``test_inner_lr``, ``zero_head`` (Conv4's head starts every task at zero: ``MAML``'s
    ``zero_init``) and ``any_way`` (that zero head gets one row per class of each task, so
    ``n_way`` no longer limits N) configure the MAML family; ``global_max_pool`` ends Conv4's body
    in a max over positions and ``first_kernel`` sizes its first convolution (``Conv4``);
    ``margin`` is ProtoNet's training-loss margin (``ProtoNet``). The keyword arguments are kept
    as ``.config`` so that a checkpoint can rebuild the method
    (``fewshot_course.training.load_checkpoint``).
    """
    config = {"method": method, "n_way": n_way, "hidden": hidden, "in_channels": in_channels,
              "image_size": image_size, "n_base_classes": n_base_classes, "inner_lr": inner_lr,
              "inner_steps": inner_steps, "test_steps": test_steps}
    # Only when set, so that checkpoints saved before these settings existed still resume.
    if zero_head:
        config["zero_head"] = True
    if test_inner_lr is not None:
        config["test_inner_lr"] = test_inner_lr
    if any_way:
        if not zero_head:
            raise ValueError("any_way gives the zero head one row per class of each task: it "
                             "needs zero_head=True")
        config["any_way"] = True
    if global_max_pool:
        config["global_max_pool"] = True
    if first_kernel != 3:
        config["first_kernel"] = first_kernel
    if margin:
        if method != "protonet":
            raise ValueError(f"margin is ProtoNet's training-loss margin; {method!r} has none")
        config["margin"] = margin
    backbone = Conv4(in_channels, n_way, hidden, image_size=image_size,
                     global_max_pool=global_max_pool, first_kernel=first_kernel)
    if method in ("maml", "fomaml", "metasgd"):
        maml = MAML(backbone, inner_lr=inner_lr, inner_steps=inner_steps,
                    first_order=method == "fomaml", learn_inner_lr=method == "metasgd",
                    zero_init=("head.weight", "head.bias") if zero_head else (),
                    any_way=any_way)
        built: FewShotClassifier = MAMLClassifier(maml, test_steps=test_steps,
                                                  test_inner_lr=test_inner_lr)
    elif method == "protonet":
        built = ProtoNet(backbone.features, margin=margin)
    elif method == "finetune":
        if n_base_classes is None:
            raise ValueError("finetune pre-trains a classifier over the base classes: pass "
                             "n_base_classes (the number of classes of the meta-train dataset)")
        built = FineTune(backbone.features, backbone.feature_dim, n_base_classes)
    elif method == "nn":
        built = NearestNeighbour()
    else:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    built.config = config
    return built


__all__ = ["FewShotClassifier", "ProtoNet", "DistributionCalibration", "FineTune",
           "NearestNeighbour", "MAMLClassifier", "AugmentedEpisodes", "SymmetricViews",
           "ShiftedViews", "TransductiveProtoNet", "METHODS", "build_method", "fit_linear_head",
           "with_test_time"]
