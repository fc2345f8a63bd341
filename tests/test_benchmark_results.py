"""benchmarks/results.py: sections of RESULTS.md, rewritten safely by runs that end together."""

from __future__ import annotations

import fcntl
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import results  # noqa: E402


@pytest.fixture
def results_file(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(results, "RESULTS", tmp_path / "RESULTS.md")
    monkeypatch.setattr(results, "LOCK", tmp_path / ".RESULTS.md.lock")
    return tmp_path / "RESULTS.md"


def test_a_section_is_added_then_replaced_in_place(results_file):
    results.write_section("first", "cmd 1", "| a |")
    results.write_section("second", "cmd 2", "| b |")
    results.write_section("first", "cmd 1 again", "| c |")
    text = results_file.read_text()
    assert text.startswith(results.HEADER)
    assert text.index("## first") < text.index("## second")
    assert "| c |" in text and "cmd 1 again" in text
    assert "| a |" not in text and text.count("<!-- first:start -->") == 1


def test_a_writer_waits_for_another_writers_read_modify_write(results_file):
    results.write_section("old", "cmd", "kept")
    # A separate process, as two benchmark runs are: a forked child would share this lock.
    writer = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from pathlib import Path; "
              "from benchmarks import results; "
              f"results.RESULTS = Path({str(results.RESULTS)!r}); "
              f"results.LOCK = Path({str(results.LOCK)!r}); "
              "print('ready', flush=True); results.write_section('child', 'cmd', 'theirs')")
    with open(results.LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run in the middle of its rewrite
        stale = results_file.read_text()
        child = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline() == "ready\n"
        time.sleep(1)  # the child is at the lock now, or would have written without it
        assert child.poll() is None and "theirs" not in results_file.read_text(), (
            "the second writer did not wait for the lock")
        results_file.write_text(stale + "\n<!-- mine:start -->\nmine\n<!-- mine:end -->\n")
    assert child.wait(timeout=60) == 0
    text = results_file.read_text()
    assert "kept" in text and "mine" in text and "theirs" in text
