"""Write one benchmark's figures into its own section of benchmarks/RESULTS.md.

Each benchmark owns a section delimited by HTML comments, so benchmarks can be rerun in any order
without overwriting each other's figures. Runs may also finish at the same time (two trainings side
by side on two cores): each rewrite holds an exclusive lock on a file beside RESULTS.md for its
read-modify-write, so neither loses the other's section.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import os
import platform
import sys
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
LOCK = RESULTS.with_name(".RESULTS.md.lock")
HEADER = (
    "# Benchmark results\n\n"
    "Each section is written by the script named in it; rerun the command to refresh it.\n"
)


def machine_line(device: torch.device | str = "cpu") -> str:
    dev = torch.device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    else:
        name = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    return (f"{_dt.date.today().isoformat()}, Python {platform.python_version()}, "
            f"torch {torch.__version__}, {dev.type}: {name}")


def write_section(name: str, command: str, body: str, device: torch.device | str = "cpu") -> None:
    """Replace (or append) section ``name`` of RESULTS.md with ``body`` (markdown)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = (f"{start}\n## {name}\n\nCommand: `{command}`\n\nMachine: {machine_line(device)}\n\n"
               f"{body.strip()}\n{end}")
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        text = RESULTS.read_text() if RESULTS.exists() else HEADER
        if start in text and end in text:
            before, rest = text.split(start, 1)
            after = rest.split(end, 1)[1]
            text = before + section + after
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        partial = RESULTS.with_name(RESULTS.name + ".partial")
        partial.write_text(text)
        os.replace(partial, RESULTS)  # a reader never sees a half-written file
    print(f"wrote section '{name}' of {RESULTS}", file=sys.stderr)
