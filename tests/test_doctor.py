"""`gemma-code doctor`: the build, the machine, the model and the plan, with fixes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import CliRunner

from gemma_code.cli import app
from gemma_code.cli.doctor import _version_tuple, arch_supported

runner = CliRunner()
pytestmark = pytest.mark.llama


def test_doctor_reports_a_usable_setup_with_its_plan(tiny_model_path: Path) -> None:
    result = runner.invoke(app, ["doctor", "--model", str(tiny_model_path)])
    assert result.exit_code == 0, result.output
    assert "llama-cpp-python  0.3.36" in result.output
    assert "n_ctx 32,768" in result.output
    assert "ready" in result.output


def test_doctor_json_describes_build_model_and_plan(tiny_model_path: Path) -> None:
    result = runner.invoke(app, ["doctor", "--json", "--model", str(tiny_model_path),
                                 "--n-ctx", "4096"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["usable"] is True
    assert report["llama_cpp_python"] == "0.3.36"
    assert report["backend"] in {"cpu", "cuda", "metal", "vulkan"}
    assert any(d["kind"] == "cpu" for d in report["devices"])
    assert report["model"]["arch"] == "gemma3"
    assert report["model"]["chat_format"] == "gemma3"
    assert report["model"]["arch_supported"] is True
    assert report["plan"]["n_ctx"] == 4096
    assert report["plan"]["kv_type"] in {"f16", "q8_0"}


def test_doctor_names_the_fix_for_a_missing_model_and_exits_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["doctor", "--json", "--model", str(tmp_path / "none.gguf")])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["usable"] is False
    assert report["problems"][0]["blocking"] is True
    assert report["problems"][0]["fix"]


def test_doctor_flags_a_file_that_is_not_a_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_text("not a model")
    result = runner.invoke(app, ["doctor", "--model", str(bad)])
    assert result.exit_code == 1
    assert "not a GGUF" in result.output
    assert "fix:" in result.output


def test_arch_support_is_read_from_the_llama_cpp_build() -> None:
    assert arch_supported("gemma4") is True
    assert arch_supported("gemma3") is True
    assert arch_supported("nosucharch") is False


def test_version_comparison() -> None:
    assert _version_tuple("0.3.36") >= (0, 3, 36)
    assert _version_tuple("0.3.9") < (0, 3, 36)
    assert _version_tuple("0.4.0rc1") > (0, 3, 36)


def test_doctor_reports_a_bad_kv_type_setting_with_its_fix(
    tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMMA_CODE_KV_TYPE", "f32")
    result = runner.invoke(app, ["doctor", "--model", str(tiny_model_path)])
    assert result.exit_code == 1
    assert "`kv_type` must be one of" in result.output and "'f32'" in result.output
    assert "fix:" in result.output


def test_doctor_model_tiny_says_it_assembles_and_counts_the_file() -> None:
    result = runner.invoke(app, ["doctor", "--model", "tiny"])
    assert result.exit_code == 0, result.output
    assert "assembling gemma3-270m from its installed package" in result.stderr
    assert "Models on disk    1" in result.stdout and "gemma3-270m" in result.stdout


def test_a_cpu_only_install_with_a_model_that_fits_is_ready() -> None:
    # the default GPU model is not downloaded; the small model's package is installed
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "not downloaded" in result.stdout
    assert "ready with --model gemma3-270m" in result.stdout
    assert 'model = "gemma3-270m"' in result.stdout.replace("\n", " ")
    report = json.loads(runner.invoke(app, ["doctor", "--json"]).stdout)
    assert report["usable"] is True and report["model"]["recommended"] == "gemma3-270m"
    assert report["plan"]["n_ctx"] > 0


def test_ask_without_the_default_model_recommends_the_installed_one() -> None:
    result = runner.invoke(app, ["ask", "--no-context", "hello"])
    assert result.exit_code == 4
    hint = " ".join(result.stderr.split())
    assert "models pull gemma-4-26b-a4b" in hint and "--model gemma3-270m" in hint


def test_doctor_names_the_cpu_features_the_llama_cpp_build_uses(tiny_model_path: Path) -> None:
    from gemma_code.engine import buildcheck

    result = runner.invoke(app, ["doctor", "--json", "--model", str(tiny_model_path)])
    report = json.loads(result.output)
    if buildcheck.is_x86():
        # install.sh builds for this CPU: every feature used runs here, and AMX is never among them
        assert "AVX" in report["build_features"] and "AMX_INT8" not in report["build_features"]
        assert not any("crashes on this CPU" in p["message"] for p in report["problems"])
