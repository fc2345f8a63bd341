#!/usr/bin/env bash
# The GPU check: the tests that can run on CUDA, with FEWSHOT_DEVICE=cuda (the MAML cross-checks
# against learn2learn also add their cuda cases), then benchmark 1 with --device cuda.
#
#   bash benchmarks/gpu_check.sh            # from anywhere; needs an NVIDIA GPU
#
# Writes the sections "GPU check" and "throughput (cuda)" of benchmarks/RESULTS.md and the logs
# benchmarks/gpu_check_tests.log and benchmarks/gpu_check_throughput.log; when $OUT is set (a
# folder), copies RESULTS.md and both logs there too. Without CUDA it stops at once, saying so
# (exit status 2). Environment: PYTHON (default .venv/bin/python), GPU_CHECK_TESTS (test files,
# default: every test file except the browser, notebook-structure and packaging ones),
# GPU_CHECK_TIMEOUT (seconds for each of the two steps, default 420). PYTHON may be any interpreter
# with torch and pytest that can import this checkout (the script puts it on PYTHONPATH): the
# course extras (nbval, JupyterLab, ipywidgets) are not needed, and the tests that use them skip.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
TIMEOUT=${GPU_CHECK_TIMEOUT:-420}
TEST_LOG=benchmarks/gpu_check_tests.log
BENCH_LOG=benchmarks/gpu_check_throughput.log

if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    echo "gpu_check: cannot import torch with $PYTHON; run 'make setup' or set PYTHON" >&2
    exit 2
fi
if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: CUDA is not available on this machine (torch.cuda.is_available() is False);" \
         "nothing was run. Run this script on a machine with an NVIDIA GPU." >&2
    exit 2
fi
"$PYTHON" -c "import torch; print('gpu_check on', torch.cuda.get_device_name(0), 'torch', torch.__version__)"

if [[ -z "${GPU_CHECK_TESTS:-}" ]]; then
    GPU_CHECK_TESTS=$(ls tests/test_*.py | grep -v -e test_browser -e test_notebook_structure \
                      -e test_packaging | tr '\n' ' ')
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
WORKERS=()
if "$PYTHON" -c "import xdist" 2>/dev/null; then
    # Half the cores, at most 8 workers, with 2 CPU threads each: the tests' CPU halves (the
    # learn2learn references, data loading) then do not oversubscribe the machine.
    WORKERS=(-n "$("$PYTHON" -c 'import os; print(max(1, min(8, (os.cpu_count() or 2) // 2)))')")
fi

echo "== tests on CUDA: $GPU_CHECK_TESTS"
# shellcheck disable=SC2086  # the list of test files is meant to be split
# The project's addopts hold nbval's options, for the notebooks; only test files run here, so they
# are replaced, and the check runs where nbval is not installed too.
FEWSHOT_DEVICE=cuda FEWSHOT_PROGRESS=0 OMP_NUM_THREADS=2 timeout "$TIMEOUT" "$PYTHON" -m pytest \
    $GPU_CHECK_TESTS -o "addopts=-p no:cacheprovider" ${WORKERS[@]+"${WORKERS[@]}"} -q -rs \
    -m "not browser" 2>&1 | tee "$TEST_LOG"
TEST_STATUS=${PIPESTATUS[0]}

echo "== benchmark 1 on CUDA"
FEWSHOT_PROGRESS=0 timeout "$TIMEOUT" "$PYTHON" benchmarks/throughput.py --device cuda 2>&1 \
    | tee "$BENCH_LOG"
BENCH_STATUS=${PIPESTATUS[0]}

SUMMARY=$(grep -E "(passed|failed|error)" "$TEST_LOG" | tail -n 1)
"$PYTHON" - "$TEST_STATUS" "$BENCH_STATUS" "$SUMMARY" "$GPU_CHECK_TESTS" <<'EOF'
import sys

sys.path.insert(0, ".")
from benchmarks.results import write_section

test_status, bench_status, summary, files = sys.argv[1:5]
body = (f"Tests with FEWSHOT_DEVICE=cuda ({files.strip()}): {summary or 'no summary line'} "
        f"(exit status {test_status}; log: benchmarks/gpu_check_tests.log).\n\n"
        f"Benchmark 1 with --device cuda: exit status {bench_status}; its figures are in the "
        "section 'throughput (cuda)' (log: benchmarks/gpu_check_throughput.log).")
write_section("GPU check", "bash benchmarks/gpu_check.sh", body, "cuda")
EOF

if [[ -n "${OUT:-}" ]]; then
    mkdir -p "$OUT"
    cp benchmarks/RESULTS.md "$TEST_LOG" "$BENCH_LOG" "$OUT"/
fi
echo "gpu_check: tests exit status $TEST_STATUS, benchmark exit status $BENCH_STATUS"
[[ "$TEST_STATUS" == 0 && "$BENCH_STATUS" == 0 ]]
