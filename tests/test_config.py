"""Layered settings and `gemma-code config show`."""

from __future__ import annotations

import json

import pytest
from cli_runner import CliRunner

from gemma_code import paths
from gemma_code.cli import app
from gemma_code.config import load_settings
from gemma_code.errors import ConfigError, ExitCode

runner = CliRunner()


def test_layers_apply_in_order_and_remember_their_source(tmp_path, monkeypatch):
    user = paths.user_config_file()
    user.parent.mkdir(parents=True)
    user.write_text('max_tokens = 100\ntemperature = 0.5\nmodel = "user-model"\n')
    project = tmp_path / "proj"
    project.mkdir()
    (project / ".gemma-code.toml").write_text("max_tokens = 200\ntop_k = 10\n")
    loaded = load_settings(
        {"top_k": 5, "model": None}, cwd=project, environ={"GEMMA_CODE_TEMPERATURE": "0.25"}
    )
    s = loaded.settings
    assert (s.max_tokens, s.temperature, s.top_k, s.model) == (200, 0.25, 5, "user-model")
    assert loaded.sources["max_tokens"] == str(project / ".gemma-code.toml")
    assert loaded.sources["temperature"] == "$GEMMA_CODE_TEMPERATURE"
    assert loaded.sources["top_k"] == "flag"
    assert loaded.sources["model"] == str(user)
    assert loaded.sources["seed"] == "default"


def test_bad_toml_names_the_file(tmp_path):
    (tmp_path / ".gemma-code.toml").write_text("max_tokens = = 3\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cwd=tmp_path, environ={})
    assert str(tmp_path / ".gemma-code.toml") in err.value.message


def test_unknown_key_and_wrong_type_name_file_and_key(tmp_path):
    (tmp_path / ".gemma-code.toml").write_text("max_tokenz = 3\n")
    with pytest.raises(ConfigError, match="unknown key `max_tokenz`"):
        load_settings(cwd=tmp_path, environ={})
    (tmp_path / ".gemma-code.toml").write_text('max_tokens = "lots"\n')
    with pytest.raises(ConfigError, match="`max_tokens` must be an integer"):
        load_settings(cwd=tmp_path, environ={})


def test_bad_env_value_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"\$GEMMA_CODE_THINK"):
        load_settings(cwd=tmp_path, environ={"GEMMA_CODE_THINK": "maybe"})


def test_config_show_json_lists_sources(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GEMMA_CODE_MAX_TOKENS", "77")
    result = runner.invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["settings"]["max_tokens"] == {"value": 77, "source": "$GEMMA_CODE_MAX_TOKENS"}


def test_bad_config_file_exits_3_with_hint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".gemma-code.toml").write_text("think = 3\n")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == ExitCode.CONFIG
    assert "`think` must be true or false" in result.stderr
    assert "hint:" in result.stderr


def test_project_file_search_stops_at_repository_root(tmp_path):
    (tmp_path / ".gemma-code.toml").write_text("max_tokens = 5\n")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    assert load_settings(cwd=repo, environ={}).settings.max_tokens != 5


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".gemma-code.toml").write_bytes(b'model = "caf\xe9"\n')
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == ExitCode.CONFIG
    assert "not UTF-8" in result.stderr and ".gemma-code.toml" in result.stderr


@pytest.mark.parametrize(("key", "value"), [("kv_type", "q9"), ("engine", "vllm"), ("fail_on", "all")])
def test_words_outside_a_settings_choices_are_refused_at_load(tmp_path, key, value):
    with pytest.raises(ConfigError, match=f"`{key}` must be one of"):
        load_settings(cwd=tmp_path, environ={f"GEMMA_CODE_{key.upper()}": value})
