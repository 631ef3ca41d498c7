"""bench/gpu.sh: the parts a machine without a GPU can check (syntax, the dry-run plan)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "gpu.sh"


def _run(tmp_path: Path, *args: str, compute_cap: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GPU_WORK=str(tmp_path / "work"), OUT=str(tmp_path / "out"),
               WHL=str(tmp_path / "whl"))
    if compute_cap is not None:
        fake = tmp_path / "bin"
        fake.mkdir(exist_ok=True)
        smi = fake / "nvidia-smi"
        smi.write_text(f"#!/bin/sh\necho '{compute_cap}'\n", encoding="utf-8")
        smi.chmod(0o755)
        env["PATH"] = f"{fake}{os.pathsep}{env['PATH']}"
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          check=False, timeout=60)


def test_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0


def test_dry_run_builds_for_the_one_gpu_architecture_and_runs_nothing(tmp_path: Path) -> None:
    result = _run(tmp_path, "--dry-run", compute_cap="9.0")
    assert result.returncode == 0, result.stderr
    plan = result.stderr
    assert "-DGGML_CUDA=ON" in plan
    assert "-DCMAKE_CUDA_ARCHITECTURES=90" in plan
    assert "--target llama llama-bench" in plan  # not the tools, server or examples
    assert "-DLLAMA_BUILD_EXAMPLES=OFF" in plan and "-DLLAMA_BUILD_SERVER=OFF" in plan
    assert "bench/synthetic_gemma4.py" in plan and "&" in plan  # written during the build
    assert "-m gemma_code bench" in plan and "--save" in plan
    assert not (tmp_path / "work").exists()


def test_dry_run_small_uses_the_small_model_and_quick_bench(tmp_path: Path) -> None:
    result = _run(tmp_path, "--dry-run", "--small", compute_cap="8.9")
    assert result.returncode == 0, result.stderr
    assert "-DCMAKE_CUDA_ARCHITECTURES=89" in result.stderr
    assert "--small" in result.stderr and "--quick" in result.stderr


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU")
def test_without_a_gpu_the_plan_is_a_cpu_build(tmp_path: Path) -> None:
    result = _run(tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "-DGGML_CUDA=OFF" in result.stderr
    assert "CUDA_ARCHITECTURES" not in result.stderr


def test_a_real_run_without_sources_says_how_to_get_them(tmp_path: Path) -> None:
    result = _run(tmp_path, compute_cap="9.0")
    assert result.returncode == 3
    assert "bench/gpu.sh pack" in result.stderr


def test_unknown_arguments_are_usage_errors(tmp_path: Path) -> None:
    result = _run(tmp_path, "--fast")
    assert result.returncode == 2
    assert "unknown argument" in result.stderr
