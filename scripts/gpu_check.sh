#!/usr/bin/env bash
# One call on the lent GPU machine (DESIGN.md section 6): install the carried
# wheels, build in place for this GPU (with the host-emulated kernels), run the
# tests (CUDA cases included), the emulated suite, the comparison of the
# device's results with the emulation's on the same inputs
# (scripts/compare_emulated.py) and the GPU benchmarks; logs and a summary go
# to $OUT.
#
#   device run: bash scripts/gpu_check.sh     (carry .whl if it holds wheels)
#
# The real maps the tests read travel with the checkout (dbnet_fast/assets). The
# benchmarks include db_boxes on a batch of 16 960 x 960 maps on CUDA with the
# copy of the results to the host (target: under 2 ms).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"

if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1)}
export DBNET_FAST_WITH_CUDA=1 DBNET_FAST_EMULATED_CUDA=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} PIP_BREAK_SYSTEM_PACKAGES=1
export PYTHONUNBUFFERED=1

if ! python3 -m pip install --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1; then
  tail -n 60 "$OUT/build.log"
  exit 1
fi
python3 -m dbnet_fast.cli info > "$OUT/info.txt" 2>&1

# A test file whose oracle package is missing here must not stop the others.
python3 -m pytest tests -q -rs -m "not emulated" --continue-on-collection-errors > "$OUT/tests.log" 2>&1
tests_rc=$?
python3 -m pytest tests -q -rs -m emulated --continue-on-collection-errors > "$OUT/emulated.log" 2>&1
emulated_rc=$?
python3 scripts/compare_emulated.py --json "$OUT/compare.json" > "$OUT/compare.log" 2>&1
compare_rc=$?
python3 benchmarks/report.py --device cuda --json "$OUT/bench.json" > "$OUT/bench.log" 2>&1
bench_rc=$?

{
  echo "# GPU check $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader
  cat "$OUT/info.txt"
  echo
  echo "## tests (exit $tests_rc)"
  grep -E "passed|failed|error" "$OUT/tests.log" | tail -n 20
  echo
  echo "## emulated CUDA tests (exit $emulated_rc)"
  grep -E "passed|failed|error" "$OUT/emulated.log" | tail -n 10
  echo
  echo "## device against its emulation (exit $compare_rc)"
  cat "$OUT/compare.log"
  echo
  echo "## benchmarks (exit $bench_rc)"
  sed -n '/^| group/,$p' "$OUT/bench.log"
  echo
  echo "## CUDA post-processing tests"
  grep -E "test_postprocess_cuda_logic.*(PASS|FAIL|SKIP)|postprocess_cuda_logic" "$OUT/tests.log" | tail -n 20
} > "$OUT/summary.md"
cat "$OUT/summary.md"
[ "$tests_rc" -eq 0 ] && [ "$emulated_rc" -eq 0 ] && [ "$compare_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
