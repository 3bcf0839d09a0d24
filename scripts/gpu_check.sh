#!/usr/bin/env bash
# The GPU run (DESIGN.md section 6): one call on the lent machine gives every
# GPU figure we claim, within GPU_CHECK_BUDGET seconds (540: a device command
# may run 10 minutes, start-up and transfers included). In order of value:
#   packages  install the carried wheels (.whl/*.whl), say what is still missing
#   build     in place, CUDA kernels for this GPU's architecture only, and the
#             host-emulated kernels (timed)
#   tests     the CUDA tests (pytest -m cuda)
#   compare   the device's results against the host emulation's (compare_emulated.py)
#   train     the training-step table, label maps for the batch, the step in a
#             CUDA graph (benchmarks/bench_train_cuda.py)
#   ops       binarize and loss against a same-bytes copy, label maps per batch,
#             post-processing of 16 960x960 maps incl. the copy back (report.py)
#   predict   DBPredictor end to end (report.py)
#   vs_onnxruntime  DBPredictor batch 1 and 16 against onnxruntime's CUDA provider
#             on the same ONNX file, images/s (benchmarks/bench_vs_rapidocr.py;
#             without onnxruntime-gpu its row says so, ours still run)
# Each step gets the time left; $OUT/summary.md is rewritten after every step,
# so a call stopped at its limit still returns what it measured. At most 8
# files come back from $OUT: summary.md, build.log, tests.log, log.txt (every
# other step's output), compare.json, train.json, ops.json, predict.json
# (vs_onnxruntime's rows: its table in summary.md, each row in log.txt).
#
#   device run:  bash scripts/gpu_check.sh          (carry [".whl"] if it holds wheels)
#   rehearsal:   scripts/gpu_check.sh --dry-run     (CI: the same steps on the CPU,
#                kernels emulated on the host, tiny sizes, the build in place)
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "usage: scripts/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3}
OUT=${OUT:-gpu-check-out}
BUDGET=${GPU_CHECK_BUDGET:-540}
KEEP=20  # seconds kept back for the last summary
mkdir -p "$OUT"
rm -f "$OUT"/{summary.md,build.log,tests.log,log.txt,compare.json,train.json,ops.json,predict.json}
WORK=$(mktemp -d)  # step statuses and the packages report: not in $OUT (8 files at most)
trap 'rm -rf "$WORK"' EXIT
export PYTHONUNBUFFERED=1 PIP_BREAK_SYSTEM_PACKAGES=1
START=$SECONDS
FAILED=0

left() { echo $((BUDGET - KEEP - (SECONDS - START))); }
summary() {
  "$PY" scripts/gpu_report.py summary --out "$OUT" --status "$WORK/status" --packages "$WORK/packages.md" \
    --vs-onnxruntime "$WORK/vs_onnxruntime.json" || echo "gpu_report.py summary failed" >&2
}
# step NAME FUNCTION: runs FUNCTION with the time left, records its exit and seconds
step() {
  local name=$1 began=$SECONDS code
  if [ "$(left)" -le 0 ]; then
    echo "$name|skipped: out of time|0" >> "$WORK/status"
  else
    printf '\n=== %s (%s s left)\n' "$name" "$(left)" >> "$OUT/log.txt"
    "$2"
    code=$?
    case $code in
      0) ;;
      124|137) FAILED=1; code="$code (stopped at the time limit)" ;;
      *) FAILED=1 ;;
    esac
    echo "$name|$code|$((SECONDS - began))" >> "$WORK/status"
  fi
  summary
}
within() {  # a command in the time left (timeout 0 would mean no limit)
  local seconds; seconds=$(left)
  [ "$seconds" -gt 0 ] || return 124
  timeout --kill-after=10 "$seconds" "$@"
}

packages() {
  if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl >> "$OUT/log.txt" 2>&1 || return 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  local dry=(); [ $DRY -eq 1 ] && dry=(--dry-run)
  "$PY" scripts/gpu_report.py packages "${dry[@]}" > "$WORK/packages.md" 2>&1
  cat "$WORK/packages.md" | tee -a "$OUT/log.txt"
}

build() {
  if [ $DRY -eq 1 ]; then  # the build in place (make build) is used: rebuilding it here could break
    # another process importing it; what the GPU build adds is its architecture list
    echo "dry run: no build; the GPU run would build with TORCH_CUDA_ARCH_LIST=<nvidia-smi compute_cap>" \
      > "$OUT/build.log"
  else
    nvidia-smi >> "$OUT/log.txt" 2>&1
    TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1)}
    echo "TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST" > "$OUT/build.log"
    TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST DBNET_FAST_WITH_CUDA=1 DBNET_FAST_EMULATED_CUDA=1 \
      MAX_JOBS=${MAX_JOBS:-$(nproc)} within "$PY" -m pip install --no-build-isolation --no-deps -e . \
      >> "$OUT/build.log" 2>&1 || { tail -n 40 "$OUT/build.log"; return 1; }
  fi
  # the build must be this checkout's, with its CUDA kernels and their host emulation
  within "$PY" -c 'import json, dbnet_fast; from dbnet_fast.testing import emulated_module; emulated_module(); info = dbnet_fast.build_info(); print(json.dumps(info)); assert info["with_cuda"], "no CUDA kernels"' \
    >> "$OUT/build.log" 2>&1 || { tail -n 20 "$OUT/build.log"; return 1; }
  "$PY" -m dbnet_fast.cli info >> "$OUT/log.txt" 2>&1
}

tests() {
  # A test file whose oracle package is missing must not stop the others.
  within "$PY" -m pytest tests -q -rs -m cuda -p no:cacheprovider --continue-on-collection-errors \
    > "$OUT/tests.log" 2>&1
}

compare() {
  local reference=cuda; [ $DRY -eq 1 ] && reference=cpu
  within "$PY" scripts/compare_emulated.py --reference $reference --json "$OUT/compare.json" >> "$OUT/log.txt" 2>&1
}

train() {
  local where=(--device cuda); [ $DRY -eq 1 ] && where=(--device cpu --tiny --emulated)
  within "$PY" benchmarks/bench_train_cuda.py "${where[@]}" --json "$OUT/train.json" >> "$OUT/log.txt" 2>&1
}

# report.py DEVICE JSON -k EXPR: the dry run times one round on the CPU (the suites'
# own sizes; CI runs every benchmark once besides, with --benchmark-disable)
report() {
  local device=$1 json=$2; shift 2
  local rounds=10; [ $DRY -eq 1 ] && { device=cpu; rounds=1; }
  within "$PY" benchmarks/report.py --device "$device" --rounds $rounds --json "$json" "$@" >> "$OUT/log.txt" 2>&1
}
ops() {
  # (torch.compile's peers left out: their compilations would cost the budget a few minutes)
  local select="((bench_binarize or bench_loss) and not compiled) or bench_targets_batch or bench_boxes_cuda"
  [ $DRY -eq 1 ] && select="bench_binarize and float32 and forward and not backward and (dbnet_fast or copy)"
  report cuda "$OUT/ops.json" -k "$select"
}
predict() {
  local select="bench_predict"; [ $DRY -eq 1 ] && select="bench_predict and r18 and dbnet_fast"
  report cuda "$OUT/predict.json" -k "$select"
}
vs_onnxruntime() {  # the dry run: the same table's code on the CPU, tiny images, one model
  local how=(--rounds 5); [ $DRY -eq 1 ] && how=(--dry-run --models ppocr-v4)
  within "$PY" benchmarks/bench_vs_rapidocr.py --device cuda "${how[@]}" \
    --json "$WORK/vs_onnxruntime.json" >> "$OUT/log.txt" 2>&1
}

echo "# gpu_check $(date -u +%FT%TZ) (dry run: $DRY, budget ${BUDGET} s)" > "$OUT/log.txt"
step packages packages
step build build || true
if grep -q '^build|0|' "$WORK/status"; then
  for name in tests compare train ops predict vs_onnxruntime; do
    step $name $name
  done
else
  echo "the build failed: nothing else can run (see build.log)" >&2
fi
cat "$OUT/summary.md"
# what the device tool brings back: at most 8 plain files, named in letters, digits, '.', '_', '-'
files=$(find "$OUT" -type f | wc -l)
if [ "$files" -gt 8 ] || find "$OUT" -type f | grep -q '/[^/]*[^A-Za-z0-9._/-][^/]*$'; then
  echo "gpu_check: \$OUT holds $files files or odd names; the device tool brings back at most 8" >&2
  FAILED=1
fi
exit $FAILED
