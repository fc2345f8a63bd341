"""Benchmark 3: accuracy on the embedded glyph set, 5-way and 20-way 1-shot, with CPU minutes.

Meta-train on the background alphabets of ``Glyphs``; test on its evaluation alphabets (disjoint
scripts). Methods:

* ``nn``: 1-nearest-neighbour on raw pixels (no training);
* ``protonet``: ProtoNet, trained once with 20-way episodes and used for both tests;
* ``dc``: distribution calibration on the frozen ProtoNet encoder (base statistics from the
  background set; no training of its own beyond the encoder's);
* ``finetune``: a classifier pre-trained on all background classes, a new head per task;
* ``maml`` / ``fomaml``: trained separately for each N (the head has N outputs).

Each training runs until ``--cpu-minutes`` of CPU time (``time.process_time``, all threads) or
``--steps``; checkpoints go to ``--checkpoint-dir`` (outside the repository), so rerunning with a
larger budget continues the same run. Test episodes are the same for every method (seeded).

    python benchmarks/glyphs_accuracy.py                         # 10 CPU-minutes per training
    python benchmarks/glyphs_accuracy.py --methods nn protonet dc --cpu-minutes 3
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import write_section  # noqa: E402

from fewshot_course.data import EpisodeSampler, Glyphs, cache_dir  # noqa: E402
from fewshot_course.evaluation import evaluate  # noqa: E402
from fewshot_course.methods import DistributionCalibration, build_method  # noqa: E402
from fewshot_course.seeding import seed_everything  # noqa: E402
from fewshot_course.training import load_checkpoint, read_checkpoint, train  # noqa: E402

METHODS = ("nn", "protonet", "dc", "finetune", "maml", "fomaml")
# MAML: the paper's Omniglot 5-way settings (alpha 0.4, 1 inner step, 3 at test) with a smaller
# meta-batch for the CPU; for 20-way the same single step (the paper's 5 second-order steps of 0.1
# cost several times more per step on the CPU, see benchmarks/omniglot_accuracy.py). First-order
# MAML takes the paper's 5 inner steps of 0.1 (10 at test): with one first-order step of 0.4 it
# barely learns, since its meta-gradient ignores how that step depends on the weights;
# first-order steps are cheap.
RECIPES = {
    "protonet": dict(train_ways=20, train_queries=5, meta_batch=1, lr=1e-3),
    "finetune": dict(train_ways=20, train_queries=5, meta_batch=1, lr=1e-3),
    ("maml", 5): dict(train_ways=5, train_queries=5, meta_batch=8, lr=1e-3, inner_lr=0.4,
                      inner_steps=1, test_steps=3),
    ("maml", 20): dict(train_ways=20, train_queries=2, meta_batch=4, lr=1e-3, inner_lr=0.4,
                       inner_steps=1, test_steps=3),
    ("fomaml", 5): dict(train_ways=5, train_queries=5, meta_batch=8, lr=1e-3, inner_lr=0.1,
                        inner_steps=5, test_steps=10),
    ("fomaml", 20): dict(train_ways=20, train_queries=2, meta_batch=4, lr=1e-3, inner_lr=0.1,
                         inner_steps=5, test_steps=10),
}


def recipe(name: str, ways: int) -> dict:
    if name in ("maml", "fomaml"):
        return RECIPES[(name, ways)]
    return RECIPES[name]


def trained(name: str, ways: int, background, args) -> tuple[Path, float, int]:
    """Train (or continue) ``name``; returns its checkpoint, CPU-minutes and steps."""
    settings = recipe(name, ways)
    tag = name
    if name in ("maml", "fomaml"):  # the inner loop in the name: a changed recipe starts afresh
        tag = f"{name}-{ways}w-{settings['inner_steps']}x{settings['inner_lr']:g}"
    checkpoint = args.checkpoint_dir / f"{tag}-h{args.hidden}.pt"
    seed_everything(args.seed)
    method = build_method(name, n_way=settings["train_ways"], hidden=args.hidden,
                          n_base_classes=len(background.class_names),
                          inner_lr=settings.get("inner_lr", 0.4),
                          inner_steps=settings.get("inner_steps", 1),
                          test_steps=settings.get("test_steps"))
    sampler = EpisodeSampler(background, settings["train_ways"], 1, settings["train_queries"],
                             seed=args.seed)
    history = train(method, sampler, args.steps, lr=settings["lr"],
                    meta_batch=settings["meta_batch"], checkpoint=checkpoint, seed=args.seed,
                    device=args.device, max_cpu_minutes=args.cpu_minutes, checkpoint_every=50,
                    run={"benchmark": "glyphs_accuracy", "recipe": settings})
    return checkpoint, history.cpu_seconds / 60, read_checkpoint(checkpoint)["step"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--ways", nargs="+", type=int, default=[5, 20])
    p.add_argument("--cpu-minutes", type=float, default=10.0, help="budget per training")
    p.add_argument("--steps", type=int, default=100_000, help="step cap per training")
    p.add_argument("--episodes", type=int, default=600)
    p.add_argument("--queries", type=int, default=5, help="queries per class in test episodes")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpoint-dir", type=Path, default=None,
                   help="default: <cache>/benchmarks/glyphs (outside the repository)")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--note", default="", help="a sentence added to the report (e.g. the load)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.checkpoint_dir = args.checkpoint_dir or cache_dir() / "benchmarks" / "glyphs"
    background, test = Glyphs("background"), Glyphs("evaluation")

    memo: dict = {}

    def once(key, make):
        if key not in memo:
            memo[key] = make()
        return memo[key]

    rows = []
    for name in args.methods:
        for ways in args.ways:
            cpu_minutes, steps = 0.0, 0
            if name == "nn":
                method = build_method("nn")
            elif name == "dc":
                checkpoint, cpu_minutes, steps = once(
                    "protonet", lambda ways=ways: trained("protonet", ways, background, args))
                encoder = load_checkpoint(checkpoint, device=args.device).encoder

                def calibrated(encoder=encoder):
                    start = time.process_time()
                    dc = DistributionCalibration.from_dataset(encoder, background, seed=args.seed)
                    return dc, (time.process_time() - start) / 60

                method, statistics_minutes = once("dc", calibrated)
                cpu_minutes += statistics_minutes
            else:
                key = (name, ways) if name in ("maml", "fomaml") else name
                checkpoint, cpu_minutes, steps = once(
                    key, lambda name=name, ways=ways: trained(name, ways, background, args))
                method = load_checkpoint(checkpoint, device=args.device)
            sampler = EpisodeSampler(test, ways, 1, args.queries, seed=args.seed + 1000 + ways)
            start = time.process_time()
            result = evaluate(method, sampler, args.episodes, device=args.device,
                              desc=f"{name} {ways}-way")
            eval_minutes = (time.process_time() - start) / 60
            rows.append((name, ways, steps, cpu_minutes, result, eval_minutes))
            print(f"{name} {ways}-way 1-shot: {result} | {steps} steps, {cpu_minutes:.1f} "
                  f"training CPU-min, {eval_minutes:.1f} eval CPU-min", flush=True)

    lines = ["| method | N-way 1-shot | accuracy (95% CI) | training steps | training CPU-min | "
             "eval CPU-min |", "| --- | --- | --- | --- | --- | --- |"]
    for name, ways, steps, cpu, result, eval_minutes in rows:
        lines.append(f"| {name} | {ways} | {result.mean:.3f} ± {result.ci95:.3f} | {steps} | "
                     f"{cpu:.1f} | {eval_minutes:.1f} |")
    recipes = "; ".join(f"{k if isinstance(k, str) else f'{k[0]} {k[1]}-way'}: {v}"
                        for k, v in RECIPES.items())
    body = "\n".join(lines) + (
        f"\n\n{args.episodes} test episodes per row from the evaluation alphabets, "
        f"{args.queries} queries per class; training budget {args.cpu_minutes} CPU-minutes or "
        f"{args.steps} steps per trained model (dc reuses the ProtoNet encoder: its CPU time "
        f"includes that training and the base statistics); Conv4 hidden={args.hidden}; "
        f"{torch.get_num_threads()} torch threads. Recipes: {recipes}. {args.note}")
    print(body)
    if not args.no_write:
        command = "python benchmarks/glyphs_accuracy.py " + shlex.join(sys.argv[1:])
        write_section("glyphs accuracy", command, body, args.device)


if __name__ == "__main__":
    main()
