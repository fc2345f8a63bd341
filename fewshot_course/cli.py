"""The command line: meta-train, evaluate, or both with timings, on one of the course's datasets.

    python -m fewshot_course train     --method protonet --dataset glyphs --steps 300
    python -m fewshot_course evaluate  --method protonet --dataset glyphs --episodes 600
    python -m fewshot_course benchmark --method maml --dataset glyphs --steps 300 --episodes 600
    python -m fewshot_course evaluate  --method protonet --dataset glyphs --test-views 8

``train`` saves a checkpoint (by default ``checkpoints/<method>-<dataset>-<ways>w<shots>s.pt`` in
the current folder) and resumes from it when it exists; ``evaluate`` loads the same path, so the
two commands chain. ``benchmark`` trains, then evaluates, and reports the CPU time both took.
``evaluate`` and ``benchmark`` can score the same weights with the test-time additions of the
benchmark table: ``--test-views``, ``--test-shifts``, ``--test-copies`` and (ProtoNet, reported
apart) ``--transductive``.

Datasets: ``glyphs`` meta-trains on the background alphabets of the embedded glyph set and tests
on its disjoint evaluation alphabets; ``omniglot`` does the same with Omniglot's background and
evaluation sets (``--omniglot-root``, ``--download``); ``digits`` meta-trains on the digits 0-4
and tests on 5-9. Validation episodes come from 10% of the meta-train characters, held out.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

from fewshot_course._device import device as default_device
from fewshot_course._malloc import tune_allocator
from fewshot_course.evaluation import Result, evaluate
from fewshot_course.methods import METHODS, build_method, with_test_time
from fewshot_course.seeding import seed_everything
from fewshot_course.training import load_checkpoint, read_checkpoint, train

DATASETS = ("glyphs", "omniglot", "digits")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m fewshot_course",
                                   description="Few-shot learning: meta-train and evaluate.")
    commands = root.add_subparsers(dest="command", required=True)
    for name, help_text in (("train", "meta-train a method and save a checkpoint"),
                            ("evaluate", "evaluate a method on test episodes, with a 95% CI"),
                            ("benchmark", "train, then evaluate, and report the CPU time")):
        command = commands.add_parser(name, help=help_text.replace("%", "%%"),
                                      description=help_text)
        _add_options(command)
        if name != "train":
            _add_test_time_options(command)
    return root


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--dataset", default="glyphs", choices=DATASETS)
    p.add_argument("--ways", type=int, default=5, help="N classes per episode (default 5)")
    p.add_argument("--shots", type=int, default=1, help="K support images per class (default 1)")
    p.add_argument("--queries", type=int, default=15, help="Q query images per class (default 15)")
    p.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    p.add_argument("--episodes", type=int, default=600, help="test episodes (default 600)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: the best available)")
    p.add_argument("--seed", type=int, default=0, help="seeds weights and episodes (default 0)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="checkpoint file (default checkpoints/<method>-<dataset>-<N>w<K>s.pt)")
    p.add_argument("--hidden", type=int, default=64, help="Conv4 channels (default 64)")
    p.add_argument("--meta-batch", type=int, default=4, help="tasks per training step (default 4)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                   help="constant, or cosine: anneal the learning rate to 0 over --steps "
                        "(default constant)")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                   help="bfloat16: mixed-precision training steps, faster on CPUs with native "
                        "bfloat16 instructions and on GPUs; weights stay float32 (default float32)")
    p.add_argument("--inner-lr", type=float, default=0.4, help="MAML inner step size (default 0.4)")
    p.add_argument("--inner-steps", type=int, default=1, help="MAML inner steps (default 1)")
    p.add_argument("--test-steps", type=int, default=None,
                   help="MAML inner steps on test tasks (default: --inner-steps)")
    p.add_argument("--val-every", type=int, default=100,
                   help="validate every this many steps, 0 for never (default 100)")
    p.add_argument("--val-episodes", type=int, default=100,
                   help="validation episodes (default 100)")
    p.add_argument("--fresh", action="store_true",
                   help="train from scratch even if the checkpoint exists (it is overwritten)")
    p.add_argument("--omniglot-root", type=Path, default=Path("data/omniglot"),
                   help="folder with Omniglot's zips (default data/omniglot)")
    p.add_argument("--download", action="store_true", help="download Omniglot if it is missing")
    p.add_argument("--rotations", action="store_true",
                   help="Omniglot meta-training with 90/180/270-degree rotations as new classes")
    p.add_argument("--mirrors", action="store_true",
                   help="Omniglot meta-training with left-right mirror images as new classes")


def _add_test_time_options(p: argparse.ArgumentParser) -> None:
    """Scoring the same weights with more care (``fewshot_course.methods.with_test_time``)."""
    p.add_argument("--test-views", type=int, choices=(1, 4, 8), default=1,
                   help="score each test episode in this many turned (4) or turned and "
                        "mirrored (8) views, averaged (default 1: as it is)")
    p.add_argument("--test-shifts", type=int, choices=(1, 4, 9), default=1,
                   help="score each test episode moved by 4 or 9 one-pixel offsets (each shifted "
                        "episode in its views), averaged (default 1: as it is)")
    p.add_argument("--test-copies", type=int, default=0,
                   help="add this many distorted copies of every support and query image "
                        "(default 0)")
    p.add_argument("--test-strength", type=float, default=0.5,
                   help="the copies' distortion strength (default 0.5, the training "
                        "distortion's; the Omniglot benchmark uses 0.75, chosen on validation)")
    p.add_argument("--transductive", action="store_true",
                   help="protonet only: refine the prototypes with each episode's unlabelled "
                        "queries; a different, easier protocol (queries inform each other)")


def default_checkpoint(args: argparse.Namespace) -> Path:
    return Path("checkpoints") / f"{args.method}-{args.dataset}-{args.ways}w{args.shots}s.pt"


def datasets(args: argparse.Namespace, *, need_train: bool = True):
    """(meta-train, validation or None, test) datasets for ``args.dataset``."""
    from fewshot_course.data import ClassSubset, Digits, Glyphs, Omniglot, split_classes

    if args.dataset == "digits":
        digits = Digits()
        return ClassSubset(digits, range(5)), None, ClassSubset(digits, range(5, 10))
    if args.dataset == "glyphs":
        background = Glyphs("background") if need_train else None
        test = Glyphs("evaluation")
    else:
        root = args.omniglot_root
        background = (Omniglot(root, "background", download=args.download,
                               rotations=args.rotations, mirrors=args.mirrors)
                      if need_train else None)
        test = Omniglot(root, "evaluation", download=args.download)
    if background is None:
        return None, None, test
    meta_train, validation = split_classes(background, (0.9, 0.1), seed=args.seed)
    return meta_train, validation, test


def run_train(args: argparse.Namespace) -> dict:
    """Meta-train as the arguments say; returns a summary (checkpoint, CPU seconds, history)."""
    from fewshot_course.data import EpisodeSampler

    if args.method == "nn":
        raise SystemExit("the nearest-neighbour baseline has nothing to train; run "
                         "`python -m fewshot_course evaluate --method nn ...` directly")
    checkpoint = args.checkpoint or default_checkpoint(args)
    meta_train, validation, _ = datasets(args)
    seed_everything(args.seed)
    channels, _, size = meta_train[0][0].shape
    method = build_method(args.method, n_way=args.ways, hidden=args.hidden,
                          image_size=size, in_channels=channels,
                          n_base_classes=len(meta_train.class_names), inner_lr=args.inner_lr,
                          inner_steps=args.inner_steps, test_steps=args.test_steps)
    sampler = EpisodeSampler(meta_train, args.ways, args.shots, args.queries, seed=args.seed)
    val_sampler = None
    if validation is not None and args.val_every > 0:
        val_sampler = EpisodeSampler(validation, min(args.ways, len(validation.class_names)),
                                     args.shots, args.queries, seed=args.seed + 1)
    run = {"dataset": args.dataset, "ways": args.ways, "shots": args.shots,
           "queries": args.queries, "command": getattr(args, "command_line", None)}
    start = time.process_time()
    history = train(method, sampler, args.steps, val_sampler=val_sampler,
                    val_every=max(args.val_every, 1), val_episodes=args.val_episodes, lr=args.lr,
                    meta_batch=args.meta_batch, checkpoint=checkpoint, resume=not args.fresh,
                    seed=args.seed, device=args.device, run=run,
                    lr_schedule=args.lr_schedule, precision=args.precision)
    cpu_seconds = time.process_time() - start
    print(f"trained {args.method} on {args.dataset} to step {args.steps} "
          f"({cpu_seconds / 60:.1f} CPU-minutes in this run); checkpoint: {checkpoint}")
    if history.validation:
        step, mean, ci95 = history.validation[-1]
        print(f"validation at step {step}: accuracy {mean:.3f} ± {ci95:.3f}")
    return {"checkpoint": checkpoint, "cpu_seconds": cpu_seconds, "history": history}


def run_evaluate(args: argparse.Namespace) -> Result:
    """Evaluate as the arguments say and print ``accuracy m ± ci (95% CI, n episodes)``."""
    from fewshot_course.data import EpisodeSampler

    _, _, test = datasets(args, need_train=False)
    device = torch.device(args.device) if args.device else default_device()
    if args.method == "nn":
        method = build_method("nn")
    else:
        checkpoint = args.checkpoint or default_checkpoint(args)
        if not Path(checkpoint).exists():
            raise SystemExit(f"no checkpoint at {checkpoint}; train first: python -m "
                             f"fewshot_course train --method {args.method} --dataset "
                             f"{args.dataset} --ways {args.ways} --shots {args.shots} "
                             "(or pass --checkpoint)")
        saved = read_checkpoint(checkpoint)["config"]["method"]
        if saved is not None and saved["method"] != args.method:
            raise SystemExit(f"{checkpoint} holds a {saved['method']} model, not {args.method}")
        method = load_checkpoint(checkpoint, device=device)
        if args.test_steps is not None and hasattr(method, "test_steps"):
            method.test_steps = args.test_steps
    try:
        method = with_test_time(method, views=args.test_views, shifts=args.test_shifts,
                                copies=args.test_copies, strength=args.test_strength,
                                seed=args.seed, transductive=args.transductive)
    except ValueError as error:
        raise SystemExit(f"test-time options: {error}") from None
    extras = [text for wanted, text in (
        (args.test_views > 1, f"{args.test_views} symmetric views"),
        (args.test_shifts > 1, f"{args.test_shifts} shifted views"),
        (args.test_copies > 0, f"{args.test_copies} distorted "
                               f"{'copy' if args.test_copies == 1 else 'copies'} of each image "
                               f"at strength {args.test_strength:g}"),
        (args.transductive, "transductive refinement (queries inform each other)")) if wanted]
    if extras:
        print("test time: " + ", ".join(extras))
    sampler = EpisodeSampler(test, args.ways, args.shots, args.queries, seed=args.seed)
    result = evaluate(method, sampler, args.episodes, device=device)
    print(result)
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    args.command_line = "python -m fewshot_course " + shlex.join(argv)
    tune_allocator()  # glibc: keep large tensor buffers for reuse (see fewshot_course/_malloc.py)
    if args.command == "train":
        run_train(args)
    elif args.command == "evaluate":
        run_evaluate(args)
    else:
        trained = run_train(args) if args.method != "nn" else {"cpu_seconds": 0.0}
        start = time.process_time()
        result = run_evaluate(args)
        print(f"training: {trained['cpu_seconds'] / 60:.2f} CPU-minutes, evaluation: "
              f"{(time.process_time() - start) / 60:.2f} CPU-minutes "
              f"({torch.get_num_threads()} threads)")
        print(f"{args.method} {args.dataset} {args.ways}-way {args.shots}-shot: {result}")
    return 0
