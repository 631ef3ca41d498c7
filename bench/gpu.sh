#!/usr/bin/env bash
# Benchmark gemma-code on a fresh GPU machine with no network, in one go (docs/bench.md):
# build llama.cpp with CUDA for this GPU's architecture only (the library llama-cpp-python
# loads, plus llama-bench), write the synthetic Gemma 4 26B A4B (16.8 GB) while it builds,
# then run `gemma-code bench --json` (which runs llama-bench too). Results go to $OUT.
#
#   bench/gpu.sh             the whole run (about 6-8 minutes on an H100/H200)
#   bench/gpu.sh --dry-run   print the plan and run nothing
#   bench/gpu.sh --small     a 6-layer model and `bench --quick` (checks the pipeline)
#   bench/gpu.sh pack        on a machine with network: fill .whl/ for the offline run
#
# Offline inputs, in .whl/ (or $WHL): llama-cpp-src.tar.gz (from `pack`: llama-cpp-python's
# sources trimmed to what this build needs, with the Gemma 4 vocabulary) or the full
# llama_cpp_python-0.3.36.tar.gz sdist, and wheels for any of numpy, jinja2, diskcache,
# typer, rich that the machine's Python lacks. Settings: OUT, GPU_WORK (build and model,
# default /tmp/gemma-code-gpu), BENCH_N_CTX (prefill sizes up to it, default 66K), PYTHON.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHL=${WHL:-$ROOT/.whl}
WORK=${GPU_WORK:-/tmp/gemma-code-gpu}
OUT=${OUT:-$ROOT/.bench-out}
PYTHON=${PYTHON:-python3}
LLAMA_CPP_PYTHON=0.3.36
BENCH_N_CTX=${BENCH_N_CTX:-67584}  # prefill up to 64K: the run stays well within 10 minutes
PY_NEEDS=(numpy jinja2 diskcache typing_extensions typer rich)

MODE=run DRY=0 SMALL=0
for arg in "$@"; do
  case $arg in
    pack) MODE=pack ;;
    --dry-run) DRY=1 ;;
    --small) SMALL=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

START=$(date +%s)
say() { printf '[gpu.sh %4ss] %s\n' "$(( $(date +%s) - START ))" "$*" >&2; }
run() {  # print a command; run it unless --dry-run
  printf '+ %s\n' "$*" >&2
  if [ "$DRY" = 0 ]; then "$@"; fi
}

# ---- pack: prepare the offline inputs (needs network: PyPI only) --------------------------
if [ "$MODE" = pack ]; then
  mkdir -p "$WHL"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  run "$PYTHON" -m pip download --no-deps --no-binary :all: -d "$tmp" "llama-cpp-python==$LLAMA_CPP_PYTHON"
  run "$PYTHON" -m pip download --only-binary :all: -d "$WHL" "${PY_NEEDS[@]}"
  if [ "$DRY" = 0 ]; then
    tar -xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp"
    src=$(ls -d "$tmp"/llama_cpp_python-*/)
    v="$src/vendor/llama.cpp"
    # what a CUDA build of libllama + llama-bench never reads (about 80 of 110 MB)
    rm -rf "$src/.git" "$v/.git" "$v/docs" "$v/benches" "$v/examples" "$v/tests" "$v/tools/ui" \
      "$v/media" "$v/gguf-py/tests"
    find "$v/models" -type f ! -name ggml-vocab-gemma-4.gguf -delete
    for backend in vulkan sycl opencl cann musa metal webgpu zdnn hexagon openvino kompute; do
      rm -rf "$v/ggml/src/ggml-$backend"
    done
    tar -czf "$WHL/llama-cpp-src.tar.gz" -C "$src/.." "$(basename "$src")"
  fi
  say "wrote $WHL: $(du -sh "$WHL" 2>/dev/null | cut -f1) (carry it with the repository)"
  exit 0
fi

# ---- the plan -------------------------------------------------------------------------------
ARCH=""
if command -v nvidia-smi >/dev/null 2>&1; then
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')
  [ -n "$cap" ] && ARCH=$cap
fi
if [ -n "$ARCH" ]; then GGML_CUDA=ON; else GGML_CUDA=OFF; fi
JOBS=$(nproc 2>/dev/null || echo 4)
SRC_TAR=$(ls "$WHL"/llama-cpp-src.tar.gz "$WHL"/llama_cpp_python-*.tar.gz 2>/dev/null | head -n1 || true)
SRC="$WORK/src"
BUILD="$WORK/build-${ARCH:-cpu}"
PYPKG="$WORK/py"
if [ "$SMALL" = 1 ]; then
  MODEL="$WORK/gemma4-synthetic-small-Q4_K_M.gguf"; WRITE_ARGS=(--small); BENCH_ARGS=(--quick)
else
  MODEL="$WORK/gemma4-26b-a4b-synthetic-Q4_K_M.gguf"; WRITE_ARGS=(); BENCH_ARGS=(--n-ctx "$BENCH_N_CTX")
fi
CCACHE=OFF
if command -v ccache >/dev/null 2>&1; then CCACHE=ON; fi
CMAKE_ARGS=(
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON
  -DGGML_CUDA="$GGML_CUDA" ${ARCH:+-DCMAKE_CUDA_ARCHITECTURES="$ARCH"} -DGGML_NATIVE=ON
  -DGGML_CCACHE="$CCACHE" -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_COMMON=ON
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
)
GENERATOR=()
if command -v ninja >/dev/null 2>&1; then GENERATOR=(-G Ninja); fi

say "GPU architecture: ${ARCH:-none (CPU build)}; $JOBS jobs; ccache $CCACHE; source ${SRC_TAR:-MISSING}"
say "model: $MODEL; results: $OUT"
if [ -z "$SRC_TAR" ] && [ "$DRY" = 0 ]; then
  echo "gpu.sh: no llama.cpp sources in $WHL; run 'bench/gpu.sh pack' on a machine with network" >&2
  exit 3
fi
run mkdir -p "$WORK" "$OUT"

# ---- sources, and the model written in the background while llama.cpp builds ---------------
if [ "$DRY" = 1 ] || [ ! -d "$SRC/vendor/llama.cpp" ]; then
  run rm -rf "$SRC"
  run mkdir -p "$SRC"
  run tar -xzf "${SRC_TAR:-$WHL/llama-cpp-src.tar.gz}" -C "$SRC" --strip-components=1
fi
VOCAB="$SRC/vendor/llama.cpp/models/ggml-vocab-gemma-4.gguf"
export PYTHONPATH="$PYPKG:$ROOT${PYTHONPATH:+:$PYTHONPATH}"

missing=()
for module in "${PY_NEEDS[@]}"; do
  "$PYTHON" -c "import $module" 2>/dev/null || missing+=("$module")
done
if [ ${#missing[@]} -gt 0 ]; then
  run "$PYTHON" -m pip install --user --no-index --find-links "$WHL" "${missing[@]}"
fi

WRITER_PID=""
if [ -f "$MODEL" ]; then
  say "model already written: $MODEL"
else
  printf '+ %s\n' "$PYTHON bench/synthetic_gemma4.py ${WRITE_ARGS[*]} --vocab $VOCAB $MODEL &" >&2
  if [ "$DRY" = 0 ]; then
    "$PYTHON" "$ROOT/bench/synthetic_gemma4.py" "${WRITE_ARGS[@]}" --vocab "$VOCAB" "$MODEL" \
      >"$OUT/write-model.log" 2>&1 &
    WRITER_PID=$!
  fi
fi

# ---- build: only libllama, its ggml libraries and llama-bench, for one architecture ---------
say "configuring llama.cpp"
run cmake -S "$SRC/vendor/llama.cpp" -B "$BUILD" "${GENERATOR[@]}" "${CMAKE_ARGS[@]}"
say "building (the CUDA kernels take most of the time)"
run cmake --build "$BUILD" --target llama llama-bench -j "$JOBS"
say "built"

# llama-cpp-python's Python package over the libraries just built (one build serves both)
run rm -rf "$PYPKG"
run mkdir -p "$PYPKG"
run cp -r "$SRC/llama_cpp" "$PYPKG/llama_cpp"
run mkdir -p "$PYPKG/llama_cpp/lib"
if [ "$DRY" = 0 ]; then
  find "$BUILD" -name 'lib*.so*' \( -type f -o -type l \) -exec cp -P {} "$PYPKG/llama_cpp/lib/" \;
else
  echo "+ cp $BUILD/**/lib*.so* $PYPKG/llama_cpp/lib/" >&2
fi
export LD_LIBRARY_PATH="$PYPKG/llama_cpp/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$BUILD/bin:$PATH"

if [ -n "$WRITER_PID" ]; then
  say "waiting for the model writer"
  wait "$WRITER_PID" || { cat "$OUT/write-model.log" >&2; exit 4; }
  cat "$OUT/write-model.log" >&2
fi

# ---- measure ------------------------------------------------------------------------------
if [ "$DRY" = 0 ]; then
  nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv >"$OUT/gpu.csv" 2>/dev/null || true
  "$PYTHON" -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.llama_supports_gpu_offload() or '$GGML_CUDA' == 'OFF' else 1)" \
    || { echo "gpu.sh: the llama.cpp build cannot offload to the GPU" >&2; exit 4; }
fi
say "benchmark"
run "$PYTHON" -m gemma_code bench --model "$MODEL" "${BENCH_ARGS[@]}" --save "$OUT/bench.json"
say "done: $OUT/bench.json (total $(( $(date +%s) - START )) s)"
