"""Benchmark 1: meta-training throughput of our MAML against learn2learn, in one process.

    .venv/bin/python benchmarks/throughput.py                  # CPU, writes RESULTS.md (~10 min)
    .venv/bin/python benchmarks/throughput.py --device cuda    # GPU (benchmarks/gpu_check.sh)
    .venv/bin/python benchmarks/throughput.py --quick          # smoke run, prints only

One meta-iteration = meta_loss on a batch of tasks + backward, i.e. everything but the optimiser
step. Both implementations start from identical weights and see identical episodes: learn2learn's
``l2l.algorithms.MAML`` runs its usual clone/adapt loop (one backward per task) on the same
``Conv4``/``MLP`` module. The images are synthetic (uniform random pixels): throughput does not
depend on what the pixels show. Sinusoid tasks are drawn from the MAML paper's family.

Reported per configuration and implementation:

* time per meta-iteration (median over interleaved rounds, so a busy machine slows every
  implementation alike) and tasks per second;
* speed relative to learn2learn: the median over rounds of learn2learn's time / ours;
* peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the memory in use before; on the
  CPU the growth of the peak resident set size over one meta-iteration, measured in a fresh
  subprocess per row (tracemalloc cannot see torch's allocations);
* the compute limit ratio: time per meta-iteration / time of one plain forward + backward pass
  over the same support and query sets (per task, as the meta-iteration batches them); and the
  same per pass: over the time of plain forward + backward passes as many as the meta-iteration
  makes (one over the support set per inner step, one over the query set), which leaves the cost
  of the second-order term and of the library's bookkeeping.

Besides the MAML paper's Conv4, one configuration gives Conv4 a head that starts every task at
zero (``MAML(zero_init=...)``, the Omniglot recipe's head; learn2learn runs on a copy whose head
is zero, the same meta-gradient as tests/test_maml.py checks): there the library's first inner step
skips the body's gradient, which is exactly zero behind a zero head.

On the CPU it also measures glibc's allocator tuning (``fewshot_course._malloc.tune_allocator``,
which the main process applies, as the CLI does) against the untuned allocator and against the
equivalent environment variables, each in fresh subprocesses.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import write_section  # noqa: E402
from fewshot_course._malloc import tune_allocator  # noqa: E402
from fewshot_course.compat import import_learn2learn  # noqa: E402
from fewshot_course.episodes import EpisodeBatch  # noqa: E402
from fewshot_course.maml import MAML  # noqa: E402
from fewshot_course.models import MLP, Conv4  # noqa: E402

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "17179869184"}
IMPLEMENTATIONS = ("learn2learn", "loop", "vmap")
ALLOCATOR_META_BATCH = 8  # tasks per meta-iteration in the allocator comparison
PROBE_FLAGS: list[str] = []  # passed on to measurement subprocesses (thread count)


@dataclass(frozen=True)
class Config:
    """One benchmark row group: a model, a task shape and a MAML variant."""

    model: str  # "conv4" or "sinusoid"
    inner_steps: int
    first_order: bool
    meta_batch: int
    hidden: int = 64
    zero_head: bool = False

    @property
    def name(self) -> str:
        task = ("Conv4 5-way 1-shot 15-query 28x28" if self.model == "conv4"
                else "sinusoid MLP 10-shot")
        if self.zero_head:
            task += ", zero head"
        order = "first order" if self.first_order else "second order"
        return f"{task}, B={self.meta_batch}, {self.inner_steps} step(s), {order}"

    @property
    def inner_lr(self) -> float:
        return 0.4 if self.model == "conv4" else 0.01

    @property
    def loss(self) -> str:
        return "cross_entropy" if self.model == "conv4" else "mse"

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


def configs(quick: bool) -> list[Config]:
    if quick:
        return [Config("conv4", 1, False, 4, hidden=16), Config("sinusoid", 1, False, 25)]
    return ([Config("conv4", steps, first_order, 32) for steps in (1, 5)
             for first_order in (False, True)]
            + [Config("conv4", 1, False, 32, zero_head=True)]
            + [Config("sinusoid", steps, first_order, 25) for steps in (1, 5)
               for first_order in (False, True)])


# --- what is timed ------------------------------------------------------------------------------

def build(config: Config, device: torch.device, seed: int = 0) -> tuple[torch.nn.Module,
                                                                       EpisodeBatch]:
    """The model (seeded weights) and one fixed meta-batch on ``device``."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    tasks = config.meta_batch
    if config.model == "conv4":
        model = Conv4(in_channels=1, n_way=5, hidden=config.hidden)
        labels = torch.arange(5)
        batch = EpisodeBatch(torch.rand(tasks, 5, 1, 28, 28, generator=generator),
                             labels.repeat(tasks, 1),
                             torch.rand(tasks, 75, 1, 28, 28, generator=generator),
                             labels.repeat_interleave(15).repeat(tasks, 1),
                             tuple(tuple(range(5)) for _ in range(tasks)))
    else:
        model = MLP((1, 40, 40, 1))
        amplitude = 0.1 + 4.9 * torch.rand(tasks, 1, 1, generator=generator)
        phase = math.pi * torch.rand(tasks, 1, 1, generator=generator)
        support_x = 10 * torch.rand(tasks, 10, 1, generator=generator) - 5
        query_x = 10 * torch.rand(tasks, 10, 1, generator=generator) - 5
        batch = EpisodeBatch(support_x, amplitude * torch.sin(support_x - phase),
                             query_x, amplitude * torch.sin(query_x - phase),
                             tuple(() for _ in range(tasks)))
    return model.to(device), batch.to(device)


def criterion(config: Config) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if config.model == "conv4":
        return F.cross_entropy
    return lambda output, target: F.mse_loss(output, target.reshape(output.shape))


def meta_iteration(config: Config, implementation: str,
                   model: torch.nn.Module) -> Callable[[EpisodeBatch], None]:
    """A function running one meta-iteration (losses + meta-gradient) on its own copy of model.

    ``implementation`` is "learn2learn", one of our strategies ("loop", "vmap"), "fwd+bwd":
    one plain forward and backward pass per task over its support set and its query set, or
    "fwd+bwd per pass": one per inner step over the support set and one over the query set.
    """
    model = copy.deepcopy(model)
    loss_fn = criterion(config)
    if implementation == "learn2learn":
        if config.zero_head:
            with torch.no_grad():
                model.head.weight.zero_()
                model.head.bias.zero_()
        l2l = import_learn2learn()
        learner = l2l.algorithms.MAML(model, lr=config.inner_lr, first_order=config.first_order)

        def run(batch: EpisodeBatch) -> None:
            for task in batch:
                clone = learner.clone()
                for _ in range(config.inner_steps):
                    clone.adapt(loss_fn(clone(task.support_x), task.support_y))
                (loss_fn(clone(task.query_x), task.query_y) / len(batch)).backward()
            learner.zero_grad(set_to_none=True)
        return run
    if implementation == "fwd+bwd":
        def run(batch: EpisodeBatch) -> None:
            for task in batch:
                (loss_fn(model(task.support_x), task.support_y)
                 + loss_fn(model(task.query_x), task.query_y)).backward()
            model.zero_grad(set_to_none=True)
        return run
    if implementation == "fwd+bwd per pass":
        def run(batch: EpisodeBatch) -> None:
            for task in batch:
                for _ in range(config.inner_steps):
                    loss_fn(model(task.support_x), task.support_y).backward()
                loss_fn(model(task.query_x), task.query_y).backward()
            model.zero_grad(set_to_none=True)
        return run
    maml = MAML(model, inner_lr=config.inner_lr, inner_steps=config.inner_steps,
                first_order=config.first_order, strategy=implementation, loss=config.loss,
                zero_init=("head.weight", "head.bias") if config.zero_head else ())

    def run(batch: EpisodeBatch) -> None:
        loss, _ = maml.meta_loss(batch)
        loss.backward()
        maml.zero_grad(set_to_none=True)
    return run


def first_tasks(batch: EpisodeBatch, tasks: int) -> EpisodeBatch:
    return EpisodeBatch(batch.support_x[:tasks], batch.support_y[:tasks], batch.query_x[:tasks],
                        batch.query_y[:tasks], batch.classes[:tasks])


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(functions: dict[str, Callable[[EpisodeBatch], None]], batch: EpisodeBatch,
                     device: torch.device, rounds: int,
                     min_seconds: float) -> dict[str, list[float]]:
    """Seconds per call of each function on ``batch``, one entry per round; they alternate."""
    for function in functions.values():  # warm-up (kernels, caches, allocator) on two tasks
        function(first_tasks(batch, 2))
    synchronise(device)
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            calls, start = 0, time.perf_counter()
            while True:
                function(batch)
                calls += 1
                synchronise(device)
                elapsed = time.perf_counter() - start
                if elapsed >= min_seconds:
                    break
            times[name].append(elapsed / calls)
    return times


# --- peak memory --------------------------------------------------------------------------------

def peak_memory_mb(config: Config, implementation: str, device: torch.device,
                   tune: bool) -> float:
    """Peak memory of one meta-iteration, in MB (see the module docstring for how)."""
    if device.type == "cuda":
        model, batch = build(config, device)
        run = meta_iteration(config, implementation, model)
        run(batch)  # warm-up outside the measurement (cuDNN workspaces, kernels)
        synchronise(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run(batch)
        synchronise(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    command = [sys.executable, __file__, "--probe-memory", config.to_json(), implementation,
               *PROBE_FLAGS]
    if not tune:
        command.append("--no-tune-allocator")
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_mb"]


def probe_memory(config: Config, implementation: str) -> None:
    """Subprocess side of ``peak_memory_mb`` on the CPU: prints {"peak_mb": ...}.

    The growth of the resident set's high-water mark over the first meta-iteration, the mark
    being reset first (Linux's /proc/self/clear_refs), so that import-time peaks do not count.
    """
    model, batch = build(config, torch.device("cpu"))
    run = meta_iteration(config, implementation, model)
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # reset VmHWM to the current VmRSS
    before = memory_status_mb("VmRSS")
    run(batch)
    print(json.dumps({"peak_mb": memory_status_mb("VmHWM") - before}))


def memory_status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM, ...) in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


# --- allocator ----------------------------------------------------------------------------------

def allocator_experiment(config: Config, rounds: int, iterations: int) -> list[dict]:
    """Our loop strategy in fresh processes: untuned, tuned by environment, tuned by mallopt."""
    variants = {"glibc defaults": ({}, ["--no-tune-allocator"]),
                "environment variables": (MALLOC_ENV, ["--no-tune-allocator"]),
                "tune_allocator() (mallopt)": ({}, [])}
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (extra_env, flags) in variants.items():
            env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
            env.update(extra_env)
            command = [sys.executable, __file__, "--probe-allocator", config.to_json(),
                       str(iterations), *flags, *PROBE_FLAGS]
            result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
            runs[name].append(json.loads(result.stdout.strip().splitlines()[-1]))
    summary = []
    for name, results in runs.items():
        summary.append({"variant": name, "meta_batch": config.meta_batch,
                        "seconds": statistics.median(r["seconds"] for r in results),
                        "cpu_seconds": statistics.median(r["cpu_seconds"] for r in results),
                        "system_seconds": statistics.median(r["system_seconds"] for r in results),
                        "page_faults": statistics.median(r["page_faults"] for r in results),
                        "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in results)})
    return summary


def probe_allocator(config: Config, iterations: int) -> None:
    """Subprocess side of ``allocator_experiment``: per-iteration costs after one warm-up."""
    model, batch = build(config, torch.device("cpu"))
    run = meta_iteration(config, "loop", model)
    run(batch)
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # from here on, VmHWM is the peak of the timed iterations
    start_usage = resource.getrusage(resource.RUSAGE_SELF)
    start, seconds = time.perf_counter(), []
    for _ in range(iterations):
        begin = time.perf_counter()
        run(batch)
        seconds.append(time.perf_counter() - begin)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "seconds": statistics.median(seconds),
        "cpu_seconds": (usage.ru_utime + usage.ru_stime - start_usage.ru_utime
                        - start_usage.ru_stime) / iterations,
        "system_seconds": (usage.ru_stime - start_usage.ru_stime) / iterations,
        "page_faults": (usage.ru_minflt - start_usage.ru_minflt) / iterations,
        "peak_rss_mb": memory_status_mb("VmHWM"), "wall": time.perf_counter() - start}))


# --- the report ---------------------------------------------------------------------------------

def benchmark(config: Config, device: torch.device, rounds: int, min_seconds: float,
              tune: bool) -> list[dict]:
    model, batch = build(config, device)
    auto = MAML(model, loss=config.loss).resolve_strategy(device)
    implementations = list(IMPLEMENTATIONS)
    if device.type == "cpu" and config.model == "conv4" and (
            config.inner_steps > 1 or config.first_order or config.zero_head):
        # The vmapped Conv4 is slower on the CPU with several times the memory (shown once, for
        # one step of second-order MAML); auto uses the loop there.
        implementations.remove("vmap")
    functions = {name: meta_iteration(config, name, model) for name in implementations}
    for plain in ("fwd+bwd", "fwd+bwd per pass"):
        functions[plain] = meta_iteration(config, plain, model)
    times = time_interleaved(functions, batch, device, rounds, min_seconds)
    baseline = times["learn2learn"]
    memory = {name: peak_memory_mb(config, name, device, tune) for name in implementations}
    rows = []
    for name in implementations:
        median = statistics.median(times[name])
        rows.append({
            "config": config.name, "implementation": name, "auto": name == auto,
            "ms": 1e3 * median, "tasks_per_s": config.meta_batch / median,
            "speedup": statistics.median(b / t for b, t in zip(baseline, times[name],
                                                                 strict=True)),
            "memory_mb": memory[name],
            "memory_ratio": (memory[name] / memory["learn2learn"] if memory["learn2learn"] > 0
                             else math.nan),
            "compute_ratio": statistics.median(t / f for t, f in zip(times[name],
                                                                     times["fwd+bwd"],
                                                                     strict=True)),
            "per_pass_ratio": statistics.median(
                t / f for t, f in zip(times[name], times["fwd+bwd per pass"], strict=True))})
    return rows


def markdown(rows: list[dict], allocator: list[dict] | None, settings: str) -> str:
    lines = ["| configuration | implementation | ms / meta-iteration | tasks/s | speed vs "
             "learn2learn | peak memory MB | memory vs learn2learn | time / (fwd+bwd) | "
             "time / (fwd+bwd per pass) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        name = row["implementation"] + (" (auto)" if row["auto"] else "")
        lines.append(f"| {row['config']} | {name} | {row['ms']:.1f} | {row['tasks_per_s']:.1f} | "
                     f"{row['speedup']:.2f}x | {row['memory_mb']:.1f} | "
                     f"{row['memory_ratio']:.2f}x | {row['compute_ratio']:.2f} | "
                     f"{row['per_pass_ratio']:.2f} |")
    text = "\n".join(lines) + "\n\n" + settings
    if allocator:
        base = allocator[0]
        text += (f"\n\nglibc allocator: our loop strategy, Conv4 1 step second order with "
                 f"B={allocator[0]['meta_batch']}, in fresh processes (median of the rounds, "
                 "per meta-iteration):\n\n"
                 "| allocator | wall s | CPU s | of which system s | page faults | "
                 "peak RSS MB | wall vs defaults |\n"
                 "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
        text += "\n".join(
            f"| {a['variant']} | {a['seconds']:.2f} | {a['cpu_seconds']:.2f} | "
            f"{a['system_seconds']:.3f} | {a['page_faults']:.0f} | {a['peak_rss_mb']:.0f} | "
            f"{base['seconds'] / a['seconds']:.2f}x |" for a in allocator)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true",
                        help="tiny smoke run (small Conv4, one round); prints, writes nothing")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-tune-allocator", action="store_true",
                        help="leave glibc's allocator at its defaults")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--conv4-rounds", type=int, default=3,
                        help="timed rounds of each CPU Conv4 configuration (default 3)")
    parser.add_argument("--note", default="",
                        help="a sentence added to the report (e.g. what else ran, or a comparison)")
    parser.add_argument("--probe-memory", nargs=2, metavar=("CONFIG", "IMPL"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--probe-allocator", nargs=2, metavar=("CONFIG", "ITERATIONS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    tune = not args.no_tune_allocator
    if tune:
        tune_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe_memory:
        probe_memory(Config(**json.loads(args.probe_memory[0])), args.probe_memory[1])
        return
    if args.probe_allocator:
        probe_allocator(Config(**json.loads(args.probe_allocator[0])),
                        int(args.probe_allocator[1]))
        return

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: CUDA is not available on this machine; run with --device cpu")
    os.environ.setdefault("FEWSHOT_PROGRESS", "0")
    if args.threads:
        PROBE_FLAGS.extend(["--threads", str(args.threads)])
    started = time.perf_counter()
    rows = []
    for config in configs(args.quick):
        # A CPU Conv4 meta-iteration takes seconds: fewer rounds of one call each.
        slow = device.type == "cpu" and config.model == "conv4"
        rounds = 1 if args.quick else (args.conv4_rounds if slow else 5)
        new_rows = benchmark(config, device, rounds, 0.0 if slow else 0.5, tune)
        rows += new_rows
        for row in new_rows:
            print(f"{row['config']:<62} {row['implementation']:<12} {row['ms']:9.1f} ms "
                  f"{row['speedup']:5.2f}x  {row['memory_mb']:8.1f} MB "
                  f"{row['memory_ratio']:5.2f}x  compute {row['compute_ratio']:.2f} "
                  f"per pass {row['per_pass_ratio']:.2f}", flush=True)
    allocator = None
    if device.type == "cpu":
        allocator_config = (configs(args.quick)[0] if args.quick
                            else Config("conv4", 1, False, ALLOCATOR_META_BATCH))
        allocator = allocator_experiment(allocator_config, rounds=1 if args.quick else 2,
                                         iterations=1 if args.quick else 3)
        for entry in allocator:
            print(entry, flush=True)
    load_average = os.getloadavg()
    load = ", ".join(f"{x:.1f}" for x in load_average)
    settings = (
        ("One round (--quick)" if args.quick else
         f"Median of interleaved rounds ({args.conv4_rounds} rounds of one meta-iteration for "
         "the CPU Conv4, else 5 rounds of at least 0.5 s each)")
        + " after a warm-up on two tasks; synthetic random images; "
        f"{torch.get_num_threads()} torch thread(s); allocator tuned in the main process: "
        f"{tune and device.type == 'cpu'}; load average (1, 5, 15 min) at the end: {load}; "
        f"total {time.perf_counter() - started:.0f} s. '(auto)' marks the strategy "
        "`MAML(strategy=\"auto\")` picks here. The vmapped Conv4 is measured once on the CPU "
        "(1 step, second order), where the loop wins.")
    if device.type == "cpu" and max(load_average) > (os.cpu_count() or 1):
        settings += (f" The load average exceeded the machine's {os.cpu_count()} cores: other "
                     "jobs shared the CPU during this run, so the wall times are inflated and "
                     "noisy; the ratios come from interleaved rounds and are more reliable.")
    if args.note:
        settings += " " + args.note
    text = markdown(rows, allocator, settings)
    print(text)
    if not (args.quick or args.no_write):
        name = "throughput" if device.type == "cpu" else "throughput (cuda)"
        command = "python benchmarks/throughput.py" + (
            " --device cuda" if device.type == "cuda" else "") + (
            f" --threads {args.threads}" if args.threads else "") + (
            f" --conv4-rounds {args.conv4_rounds}" if args.conv4_rounds != 3 else "") + (
            " --no-tune-allocator" if not tune else "") + (
            f" --note {shlex.quote(args.note)}" if args.note else "")
        write_section(name, command, text, device)


if __name__ == "__main__":
    main()
