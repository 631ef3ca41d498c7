#!/usr/bin/env bash
# gemma-code installer: one command on a fresh Linux or macOS machine.
#
#   ./install.sh            # .venv in this folder, llama.cpp built for your GPU (or CPU)
#   ./install.sh --dev      # plus the test and dev tools (pytest, hypothesis, ruff, mypy)
#
# Re-running is fast: the llama-cpp-python wheel built for this machine's backend and CPU is kept
# in ~/.cache/gemma-code/wheels/<backend>-<arch>-<key>/ and reused after a check that it runs here.
set -euo pipefail

LLAMA_CPP_VERSION="0.3.36"   # keep in step with pyproject.toml
MIN_PY_MINOR=10

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prefix="$here/.venv"
dev=0
backend=""
python_bin="${PYTHON:-}"

usage() {
  cat <<'EOF'
Usage: ./install.sh [--dev] [--prefix DIR] [--cpu|--cuda|--metal] [--python PYTHON]

Creates a virtual environment (default: .venv in the repository), builds llama-cpp-python
for the accelerator it finds and, on x86, for the SIMD extensions this CPU has (never AMX, which
crashes the llama.cpp in llama-cpp-python 0.3.36), proves the build by decoding a few tokens of a
tiny model it writes (rebuilding with a conservative flag set if that fails), and installs
gemma-code into it.

  --dev            also install the test and dev extras (pytest, hypothesis, ruff, mypy...)
  --prefix DIR     create the virtual environment in DIR instead of ./.venv
  --cpu            build llama.cpp for the CPU even if a GPU is present
  --cuda           build for NVIDIA CUDA (needs nvcc, the CUDA toolkit)
  --metal          build for Apple Metal (macOS)
  --python PY      the Python interpreter to use (3.10 or newer)
  -h, --help       this help

Environment: CMAKE_ARGS adds to (or, for a custom backend, replaces) the build flags;
PIP_INDEX_URL etc. are honoured by pip as usual.

Then:  .venv/bin/gemma-code doctor
EOF
}

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$1" >&2; [ -n "${2:-}" ] && printf '\033[33mhint:\033[0m %s\n' "$2" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dev) dev=1 ;;
    --prefix) [ $# -ge 2 ] || die "--prefix needs a folder"; prefix="$2"; shift ;;
    --prefix=*) prefix="${1#*=}" ;;
    --cpu) backend=cpu ;;
    --cuda) backend=cuda ;;
    --metal) backend=metal ;;
    --python) [ $# -ge 2 ] || die "--python needs an interpreter"; python_bin="$2"; shift ;;
    --python=*) python_bin="${1#*=}" ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" "see ./install.sh --help" ;;
  esac
  shift
done

# --- prerequisites -----------------------------------------------------------------------
if [ -z "$python_bin" ]; then
  # the first interpreter that runs and is new enough (pyenv shims may exist but not run)
  for candidate in python3 python3.13 python3.12 python3.11 python3.10; do
    if "$candidate" -c "import sys; sys.exit(sys.version_info < (3, $MIN_PY_MINOR))" >/dev/null 2>&1; then
      python_bin="$candidate"; break
    fi
  done
fi
[ -n "$python_bin" ] || die "Python 3.10 or newer was not found" \
  "install it (Debian/Ubuntu: sudo apt-get install python3 python3-venv; macOS: brew install python)"
py_minor=$("$python_bin" -c 'import sys; print(sys.version_info[1] if sys.version_info[0] == 3 else 0)')
[ "$py_minor" -ge "$MIN_PY_MINOR" ] || die "$python_bin is Python 3.$py_minor; gemma-code needs 3.$MIN_PY_MINOR or newer" \
  "install a newer Python and pass it with --python"
"$python_bin" -c 'import venv, ensurepip' 2>/dev/null || die "$python_bin cannot create virtual environments" \
  "Debian/Ubuntu: sudo apt-get install python3-venv"

compiler=""
for c in "${CC:-}" cc gcc clang; do
  if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1; then compiler="$c"; break; fi
done
[ -n "$compiler" ] || die "no C/C++ compiler found (llama.cpp is built from source)" \
  "Debian/Ubuntu: sudo apt-get install build-essential; macOS: xcode-select --install"
if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1 && ! command -v clang++ >/dev/null 2>&1; then
  die "no C++ compiler found (llama.cpp is C++)" "Debian/Ubuntu: sudo apt-get install g++; macOS: xcode-select --install"
fi
command -v cmake >/dev/null 2>&1 || say "cmake not found: pip will fetch CMake from PyPI for the build (or: apt-get install cmake / brew install cmake)"

# --- accelerator --------------------------------------------------------------------------
gpu_present=0
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && gpu_present=1
have_nvcc=0
{ command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; } && have_nvcc=1
if [ -z "$backend" ]; then
  if [ "$(uname -s)" = "Darwin" ]; then
    backend=metal
  elif [ "$gpu_present" = 1 ] && [ "$have_nvcc" = 1 ]; then
    backend=cuda
  elif [ "$gpu_present" = 1 ]; then
    say "an NVIDIA GPU is present but nvcc (the CUDA toolkit) is not: building for the CPU"
    say "for GPU speed install the CUDA toolkit, then rerun ./install.sh --cuda"
    backend=cpu
  else
    [ "$have_nvcc" = 1 ] && say "nvcc found but no NVIDIA GPU answers nvidia-smi: building for the CPU (--cuda forces CUDA)"
    backend=cpu
  fi
fi
build_args=""
case "$backend" in
  cuda)
    command -v nvcc >/dev/null 2>&1 || export PATH="/usr/local/cuda/bin:$PATH"
    command -v nvcc >/dev/null 2>&1 || die "--cuda needs nvcc (the CUDA toolkit)" "install the CUDA toolkit or use --cpu"
    build_args="-DGGML_CUDA=on"
    # build only for this machine's GPU architecture: much faster than every architecture
    if command -v nvidia-smi >/dev/null 2>&1; then
      cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')
      [ -n "$cap" ] && build_args="$build_args -DCMAKE_CUDA_ARCHITECTURES=$cap"
    fi
    say "accelerator: NVIDIA CUDA ($build_args)" ;;
  metal) build_args="-DGGML_METAL=on"; say "accelerator: Apple Metal" ;;
  cpu) say "accelerator: none found, building llama.cpp for the CPU" ;;
  *) die "unknown backend $backend" ;;
esac

# --- virtual environment --------------------------------------------------------------------
if [ ! -x "$prefix/bin/python" ]; then
  say "creating virtual environment in $prefix"
  "$python_bin" -m venv "$prefix"
else
  say "using the virtual environment in $prefix"
fi
py="$prefix/bin/python"
"$py" -m pip install --quiet --upgrade pip wheel >/dev/null || die "could not upgrade pip in $prefix" "check your network access to PyPI"

# --- llama-cpp-python, built once per backend and CPU, proven before use ------------------
# On x86 llama.cpp is built for the extensions this CPU has, named one by one, never with
# -march=native: a native build on an Intel CPU with AMX dies with SIGILL in llama_decode
# (llama-cpp-python 0.3.36; llama.cpp PR #26954). buildcheck.py computes the flags and, after
# every build and before reusing one, decodes a few tokens in a child process to prove it runs.
buildcheck="$here/gemma_code/engine/buildcheck.py"
RECIPE=2   # bump when the build recipe changes: older cached wheels are then never reused
cpu_args=""
[ "$backend" = metal ] || cpu_args=$("$python_bin" "$buildcheck" flags) \
  || die "could not read this CPU's features" "pass CMAKE_ARGS yourself, e.g. CMAKE_ARGS='-DGGML_NATIVE=OFF'"
if [ -n "$cpu_args" ]; then
  say "CPU: building for $("$python_bin" "$buildcheck" flags --names) (AMX off until llama.cpp fixes its tile setup)"
fi
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/gemma-code/wheels"
stamp="$prefix/.gemma-code-llama-backend"
arch=$(uname -m)

# tag_for ARGS: the cache folder's name; it changes with the version, recipe, machine and flags
tag_for() { printf '%s-%s-%s' "$backend" "$arch" "$(printf '%s|%s|%s|%s' "$LLAMA_CPP_VERSION" "$RECIPE" "$arch" "$1" | cksum | cut -d' ' -f1)"; }

# check_build: decode a few tokens with the installed llama-cpp-python; prints its features
check_build() {
  local rc=0
  if command -v timeout >/dev/null 2>&1; then
    timeout 600 "$py" "$buildcheck" check || rc=$?
  else
    "$py" "$buildcheck" check || rc=$?
  fi
  [ "$rc" = 0 ] && return 0
  case "$rc" in
    132) say "the llama.cpp build died with an illegal instruction (exit 132): it uses an instruction this CPU cannot run" ;;
    124) say "the llama.cpp build check hung for 10 minutes (exit 124)" ;;
    *) say "the llama.cpp build check failed (exit $rc)" ;;
  esac
  return 1
}

# install_wheel WHEEL: put this wheel into the environment (with its own dependencies)
install_wheel() {
  "$py" -m pip install --quiet --force-reinstall --no-deps "$1" \
    && "$py" -m pip install --quiet "$1" || die "installing $1 failed" "see pip's message above"
}

# build_and_check ARGS: reuse or build the wheel for ARGS, install it, prove it; 0 when it runs
build_and_check() {
  local args="$1" tag wheelhouse wheel have
  tag=$(tag_for "$args")
  wheelhouse="$cache_root/$tag"
  mkdir -p "$wheelhouse"
  have=$("$py" -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))" 2>/dev/null || true)
  if [ "$have" = "$LLAMA_CPP_VERSION" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$tag" ]; then
    say "llama-cpp-python $LLAMA_CPP_VERSION ($tag) already installed; checking it runs on this CPU"
    check_build && return 0
    rm -f "$stamp"
  fi
  wheel=$(ls "$wheelhouse"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl 2>/dev/null | head -n1 || true)
  if [ -n "$wheel" ]; then
    say "reusing the llama-cpp-python build in $wheelhouse; checking it runs on this CPU"
    install_wheel "$wheel"
    if check_build; then echo "$tag" > "$stamp"; return 0; fi
    say "the cached build does not run here: removing it and building again"
    rm -f "$wheel"
  fi
  say "building llama-cpp-python $LLAMA_CPP_VERSION ($tag; several minutes, kept for next time)"
  say "CMAKE_ARGS=$args"
  # --no-cache-dir: pip's own cache keys wheels by URL alone and would hand back a build
  # made with other flags (a CPU build for --cuda); the wheelhouse above is the cache.
  CMAKE_ARGS="$args" "$py" -m pip wheel --no-cache-dir --no-deps "llama-cpp-python==$LLAMA_CPP_VERSION" -w "$wheelhouse" \
    || { say "building llama-cpp-python failed (see the error above)"; return 1; }
  wheel=$(ls "$wheelhouse"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl | head -n1)
  install_wheel "$wheel"
  if check_build; then echo "$tag" > "$stamp"; return 0; fi
  rm -f "$wheel"
  return 1
}

cmake_args=$(echo $build_args $cpu_args ${CMAKE_ARGS:-})   # word splitting trims the spaces
if ! build_and_check "$cmake_args"; then
  conservative=""
  [ -n "$cpu_args" ] && conservative=$("$python_bin" "$buildcheck" flags --conservative)
  [ -n "$conservative" ] && [ "$conservative" != "$cpu_args" ] \
    || die "llama-cpp-python could not be built or does not run on this machine" \
      "read the errors above; --cpu avoids GPU toolchain problems; CMAKE_ARGS can set other build flags"
  say "rebuilding with the conservative flag set ($("$python_bin" "$buildcheck" flags --conservative --names)): slower, but it runs"
  build_and_check "$(echo $build_args $conservative ${CMAKE_ARGS:-})" \
    || die "llama-cpp-python does not run on this machine, even built conservatively" \
      "report it with the output above; CMAKE_ARGS can set other build flags"
fi

# --- gemma-code ----------------------------------------------------------------------------
extras="[serve]"   # `gemma-code serve`'s server packages
[ "$dev" = 1 ] && extras="[serve,test,dev]"
say "installing gemma-code with $extras"
"$py" -m pip install --quiet -e "$here$extras" || die "installing gemma-code failed" "see pip's message above"
# the editable install leaves the package as source: compile it now, so that no command pays for
# compiling it (even where PYTHONDONTWRITEBYTECODE keeps Python from caching it on first use)
"$py" -m compileall -q "$here/gemma_code" >/dev/null || say "note: could not byte-compile gemma_code (commands start slower)"

say "done. Try:  $prefix/bin/gemma-code doctor"
[ "$dev" = 1 ] && say "tests:     $prefix/bin/python -m pytest"
exit 0
