"""The command line: train then evaluate chain through the default checkpoint path."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from fewshot_course.cli import main, parser
from fewshot_course.training import read_checkpoint

RESULT_LINE = re.compile(r"accuracy (\d\.\d{3}) ± (\d\.\d{3}) \(95% CI, (\d+) episodes\)")


def cli(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "FEWSHOT_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "fewshot_course", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_train_then_evaluate_on_glyphs_in_a_subprocess(tmp_path):
    tiny = ["--method", "protonet", "--dataset", "glyphs", "--ways", "3", "--queries", "2",
            "--hidden", "8", "--device", "cpu"]
    trained = cli("train", *tiny, "--steps", "3", "--val-every", "2", "--val-episodes", "3",
                  "--lr-schedule", "cosine", "--precision", "bfloat16", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    checkpoint = tmp_path / "checkpoints" / "protonet-glyphs-3w1s.pt"
    settings = read_checkpoint(checkpoint)["config"]["train"]
    assert settings["lr_schedule"] == "cosine" and settings["precision"] == "bfloat16"
    assert "validation at step 3" in trained.stdout

    evaluated = cli("evaluate", *tiny, "--episodes", "4", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    match = RESULT_LINE.search(evaluated.stdout)
    assert match and match.group(3) == "4", evaluated.stdout
    assert 0.0 <= float(match.group(1)) <= 1.0


def test_nearest_neighbour_on_digits_needs_no_training(capsys):
    assert main(["evaluate", "--method", "nn", "--dataset", "digits", "--episodes", "5",
                 "--queries", "3", "--device", "cpu"]) == 0
    match = RESULT_LINE.search(capsys.readouterr().out)
    assert match and match.group(3) == "5"
    assert float(match.group(1)) > 0.3  # real digits 5-9 by raw-pixel 1-NN: far above chance


def test_missing_checkpoint_and_untrainable_method_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="train first: python -m fewshot_course train"):
        main(["evaluate", "--method", "maml", "--dataset", "digits", "--episodes", "2"])
    with pytest.raises(SystemExit, match="nothing to train"):
        main(["train", "--method", "nn", "--dataset", "digits"])


def test_help_lists_the_options_of_the_issue(capsys):
    for command in ("train", "evaluate", "benchmark"):
        with pytest.raises(SystemExit) as exit_code:
            main([command, "--help"])
        assert exit_code.value.code == 0
        text = capsys.readouterr().out
        for option in ("--method", "--dataset", "--ways", "--shots", "--queries", "--steps",
                       "--device", "--seed", "--checkpoint", "--episodes", "--hidden",
                       "--omniglot-root", "--rotations", "--mirrors"):
            assert option in text, (command, option)
        assert "%%" not in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "train,evaluate,benchmark" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser().parse_args(["train", "--method", "siamese"])


def test_evaluate_scores_with_the_test_time_options(capsys):
    from fewshot_course.data import ClassSubset, Digits, EpisodeSampler
    from fewshot_course.evaluation import evaluate
    from fewshot_course.methods import NearestNeighbour, with_test_time

    options = ["--method", "nn", "--dataset", "digits", "--episodes", "4", "--queries", "3",
               "--device", "cpu", "--seed", "2"]
    assert main(["evaluate", *options, "--test-views", "4", "--test-shifts", "4",
                 "--test-copies", "1", "--test-strength", "0.75"]) == 0
    out = capsys.readouterr().out
    assert ("test time: 4 symmetric views, 4 shifted views, 1 distorted copy of each image at "
            "strength 0.75") in out
    expected = evaluate(with_test_time(NearestNeighbour(), views=4, shifts=4, copies=1,
                                       strength=0.75, seed=2),
                        EpisodeSampler(ClassSubset(Digits(), range(5, 10)), 5, 1, 3, seed=2),
                        4, device="cpu")
    assert RESULT_LINE.search(out).group(0) == str(expected)
    with pytest.raises(SystemExit, match="test-time options: transductive refinement needs a "
                                         "ProtoNet"):
        main(["evaluate", *options, "--transductive"])
    with pytest.raises(SystemExit):  # argparse: only 1, 4 or 8 views
        main(["evaluate", *options, "--test-views", "3"])
    with pytest.raises(SystemExit):  # argparse: only 1, 4 or 9 shifts
        main(["evaluate", *options, "--test-shifts", "2"])
    with pytest.raises(SystemExit):  # training has no test time
        main(["train", "--method", "protonet", "--test-views", "8"])
