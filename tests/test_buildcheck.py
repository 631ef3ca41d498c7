"""The llama.cpp build is made for this CPU without AMX, and proven by decoding before use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gemma_code.engine import buildcheck

# Flag lines as Linux prints them for an Intel Sapphire Rapids VM (AMX) and an AMD EPYC Milan.
SAPPHIRE_RAPIDS = (
    "processor\t: 0\nflags\t\t: fpu sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2 "
    "avx512f avx512dq avx512cd avx512bw avx512vl avx512vbmi avx512_vnni avx512_bf16 avx_vnni "
    "amx_bf16 amx_tile amx_int8\n"
)
MILAN = "flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c bmi1 avx2 bmi2 vaes\n"
BUILD_SCRIPT = Path(buildcheck.__file__)


def test_amx_cpu_gets_every_simd_extension_but_never_amx() -> None:
    args = buildcheck.cmake_flags(buildcheck.cpu_flags(SAPPHIRE_RAPIDS), machine="x86_64")
    assert "-DGGML_NATIVE=OFF" in args  # -march=native would switch AMX on
    for option in ("GGML_AVX512", "GGML_AVX512_VNNI", "GGML_AVX512_BF16", "GGML_AVX_VNNI", "GGML_AVX2"):
        assert f"-D{option}=ON" in args
    for option in buildcheck.ALWAYS_OFF:
        assert f"-D{option}=OFF" in args
    assert not any("AMX" in a and a.endswith("=ON") for a in args)


def test_cpu_without_avx512_builds_without_it() -> None:
    args = buildcheck.cmake_flags(buildcheck.cpu_flags(MILAN), machine="x86_64")
    assert "-DGGML_AVX512=OFF" in args and "-DGGML_AVX2=ON" in args and "-DGGML_BMI2=ON" in args
    assert buildcheck.feature_names(args) == ["SSE42", "AVX", "AVX2", "FMA", "F16C", "BMI2"]


def test_avx512_needs_all_five_foundation_flags() -> None:
    partial = "flags: avx2 fma f16c avx512f avx512cd\n"  # no bw/dq/vl: llama.cpp's -mavx512bw would fault
    args = buildcheck.cmake_flags(buildcheck.cpu_flags(partial), machine="x86_64")
    assert "-DGGML_AVX512=OFF" in args


def test_conservative_set_keeps_only_the_common_extensions() -> None:
    args = buildcheck.cmake_flags(buildcheck.cpu_flags(SAPPHIRE_RAPIDS), conservative=True, machine="x86_64")
    assert buildcheck.feature_names(args) == ["SSE42", "AVX", "AVX2", "FMA", "F16C"]


def test_unreadable_cpu_flags_fall_back_to_the_conservative_set_without_features() -> None:
    args = buildcheck.cmake_flags(set(), machine="x86_64")
    assert "-DGGML_NATIVE=OFF" in args and buildcheck.feature_names(args) == []


def test_arm_keeps_llama_cpps_own_choice() -> None:
    assert buildcheck.cmake_flags(buildcheck.cpu_flags(SAPPHIRE_RAPIDS), machine="aarch64") == []


def test_mismatch_names_amx_and_missing_instructions_as_unsafe() -> None:
    amx_build = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 |"
    unsafe, _ = buildcheck.build_mismatch(amx_build, buildcheck.cpu_flags(SAPPHIRE_RAPIDS))
    assert unsafe == ["AMX_INT8"]
    unsafe, _ = buildcheck.build_mismatch(amx_build, buildcheck.cpu_flags(MILAN))
    assert "AVX512" in unsafe and "AMX_INT8" in unsafe


def test_mismatch_reports_extensions_the_build_leaves_unused() -> None:
    avx2_build = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 |"
    unsafe, skipped = buildcheck.build_mismatch(avx2_build, buildcheck.cpu_flags(SAPPHIRE_RAPIDS))
    assert unsafe == [] and {"AVX512", "AVX512_VNNI", "AVX_VNNI"} <= set(skipped)
    assert buildcheck.build_mismatch(avx2_build, buildcheck.cpu_flags(MILAN)) == ([], [])


def test_flags_command_runs_with_a_bare_python_before_gemma_code_is_installed(tmp_path: Path) -> None:
    # install.sh runs the file by path with the system Python: no gemma_code import may be needed
    result = subprocess.run([sys.executable, "-I", str(BUILD_SCRIPT), "flags"], capture_output=True,
                            text=True, check=True, cwd=tmp_path)
    if buildcheck.is_x86() and sys.platform != "darwin":
        assert "-DGGML_NATIVE=OFF" in result.stdout and "-DGGML_AMX_INT8=OFF" in result.stdout


def test_tiny_gguf_is_a_valid_gguf_with_quantized_weights(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    path = buildcheck.write_tiny_gguf(tmp_path / "check.gguf")
    reader = gguf.GGUFReader(str(path))
    kinds = {t.tensor_type.name for t in reader.tensors}
    assert {"Q4_0", "Q8_0", "Q4_K", "Q6_K"} <= kinds
    assert not (tmp_path / "check.gguf.part").exists()


@pytest.mark.llama
def test_check_decodes_with_the_installed_build_in_a_child_process() -> None:
    result = buildcheck.check_in_child()
    assert result.returncode == 0, result.stderr
    assert "build check: ok" in result.stdout
    assert "llama.cpp build:" in result.stdout and "AMX_INT8 = 1" not in result.stdout
