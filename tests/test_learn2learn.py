"""The installed learn2learn (our MAML's reference) works, imports quietly, and stays optional."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from fewshot_course.models import Conv4

SCRIPT = """
import json, sys
import fewshot_course, fewshot_course.maml, fewshot_course.models
before = {"learn2learn": "learn2learn" in sys.modules, "gym": "gym" in sys.modules}
from fewshot_course.compat import import_learn2learn
try:
    version = import_learn2learn().__version__
except ImportError:
    version = None
print(json.dumps({"imported_by_the_library": before, "version": version}))
"""


@pytest.fixture(scope="module")
def fresh_interpreter() -> tuple[dict, str]:
    """What a fresh Python sees: the library's imports, then import_learn2learn(); and stderr."""
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def test_the_library_does_not_import_learn2learn(fresh_interpreter):
    report, _ = fresh_interpreter
    assert report["imported_by_the_library"] == {"learn2learn": False, "gym": False}


def test_import_learn2learn_is_quiet(fresh_interpreter):
    report, stderr = fresh_interpreter
    if report["version"] is None:
        pytest.skip("learn2learn is not installed")
    assert report["version"] == "0.2.0"
    assert stderr == ""  # no gym banner, no warnings


def test_one_learn2learn_maml_adaptation_step_on_the_cpu():
    from fewshot_course.compat import import_learn2learn

    try:
        l2l = import_learn2learn()
    except ImportError as error:
        pytest.skip(str(error))
    torch.manual_seed(0)
    model = Conv4(hidden=4)
    x, y = torch.rand(5, 1, 28, 28), torch.arange(5)
    maml = l2l.algorithms.MAML(model, lr=0.5)
    learner = maml.clone()
    loss = F.cross_entropy(learner(x), y)
    gradients = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
    learner.adapt(loss)
    for original, adapted, gradient in zip(model.parameters(), learner.parameters(), gradients,
                                           strict=True):
        torch.testing.assert_close(adapted, original - 0.5 * gradient)
    # Backpropagating through the clone reaches the original weights.
    F.cross_entropy(learner(x), y).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
