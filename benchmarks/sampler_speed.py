"""How long the episode sampler takes per episode, on Omniglot-sized data and the real datasets.

    .venv/bin/python benchmarks/sampler_speed.py            # prints a table, writes RESULTS.md

The target: one 20-way 5-shot 15-query episode from Omniglot-sized data (964 classes x 20
drawings) in well under a millisecond of Python. Both the wall-clock and the process CPU time are
reported, with the machine's load average, because a shared machine inflates the wall clock.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import write_section  # noqa: E402
from fewshot_course.data import EpisodeSampler, Glyphs, ImageDataset, Omniglot  # noqa: E402

OMNIGLOT_DIR = Path(os.environ.get("FEWSHOT_OMNIGLOT_DIR",
                                   Path(__file__).resolve().parents[2] / "shared" / "data" /
                                   "omniglot"))
EPISODES, ROUNDS = 100, 3


def omniglot_sized() -> ImageDataset:
    """964 classes x 20 images of 28x28 (the size of Omniglot's background set), random pixels."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(964).repeat_interleave(20)
    images = torch.randint(0, 256, (len(labels), 1, 28, 28), dtype=torch.uint8,
                           generator=generator)
    return ImageDataset(images, labels, [f"character{c}" for c in range(964)])


def per_call(draw, calls: int = EPISODES) -> tuple[float, float]:
    """Median over rounds of (wall, CPU) microseconds per call of ``draw``."""
    draw()
    walls, cpus = [], []
    for _ in range(ROUNDS):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            draw()
        walls.append((time.perf_counter() - wall) / calls * 1e6)
        cpus.append((time.process_time() - cpu) / calls * 1e6)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    datasets = {"Omniglot-sized (964 x 20, synthetic pixels)": omniglot_sized(),
                "Glyphs background": Glyphs("background")}
    if (OMNIGLOT_DIR / "images_background_small1.zip").exists():
        datasets["Omniglot background_small1, rotations"] = Omniglot(
            OMNIGLOT_DIR, "background_small1", rotations=True)
    settings = [(5, 1, 15), (20, 5, 15), (20, (1, 5), 15)]
    rows = ["| dataset | episode (N, K, Q) | wall µs per episode | CPU µs per episode |",
            "| --- | --- | ---: | ---: |"]
    for name, dataset in datasets.items():
        for n, k, q in settings:
            sampler = EpisodeSampler(dataset, n, k, q, seed=0)
            wall, cpu = per_call(sampler.sample)
            rows.append(f"| {name} | {n}, {k}, {q} | {wall:.0f} | {cpu:.0f} |")
        sampler = EpisodeSampler(dataset, 5, 1, 15, seed=0)
        wall, cpu = per_call(lambda s=sampler: s.sample_batch(32), calls=EPISODES // 32 + 1)
        rows.append(f"| {name} | sample_batch(32) of 5, 1, 15, per task | {wall / 32:.0f} | "
                    f"{cpu / 32:.0f} |")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    body = "\n".join(rows) + (f"\n\nMedian of {ROUNDS} rounds of {EPISODES} calls; load average "
                              f"(1, 5, 15 min) at the end: {load}. K = (1, 5) draws each class's "
                              "shots in 1..5 (imbalanced episodes).")
    print(body)
    write_section("Episode sampler speed", "python benchmarks/sampler_speed.py", body)


if __name__ == "__main__":
    main()
