"""Secret values stay out of every prompt (issue 14, item 8).

The attack as reproduced: AWS, GitHub, Stripe and Slack keys inside ordinary .py files were
packed into the prompt in full, as were .envrc, secret.yaml, *.tfvars, *.tfstate,
.kube/config and .docker/config.json. The model (scripted) records what it saw.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import CliRunner
from conftest import git

from gemma_code import paths, secret_patterns
from gemma_code.cli import app
from gemma_code.context.files import path_skip_reason, scan_files
from gemma_code.secret_patterns import Redactor, find_secrets

runner = CliRunner()

# realistic-looking values (not live keys): the formats the issue names
AWS = "AKIAQ3EGRJ5XN7PLW2ZD"
AWS_SECRET = "q8Xm2vR4tL9wZp1sKd7Yh3NbF6jC0aGe5uTi8oQw"
GITHUB = "ghp_R8mX2vQ4tL9wZp1sKd7Yh3NbF6jC0aGe5uTi"
STRIPE = "sk_live_51Hq8Xm2vR4tL9wZp1sKd7Yh3NbF6jC0aGe5uTi8oQwEr2tYu"
SLACK = "xoxb-2748392017-4839201748-Rq8Xm2vR4tL9wZp1sKd7Yh3N"
VALUES = (AWS, AWS_SECRET, GITHUB, STRIPE, SLACK)
SETTINGS_PY = f'''"""Deployment settings."""

AWS_ACCESS_KEY_ID = "{AWS}"
aws_secret_access_key = "{AWS_SECRET}"
GITHUB_TOKEN = "{GITHUB}"
STRIPE_KEY = "{STRIPE}"
SLACK_BOT = "{SLACK}"
DEBUG = True
'''


@pytest.fixture
def secret_repo(git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (git_repo / "settings.py").write_text(SETTINGS_PY, encoding="utf-8")
    git(git_repo, "add", "settings.py")
    git(git_repo, "commit", "-q", "-m", "settings")
    monkeypatch.chdir(git_repo)
    return git_repo


def test_each_named_format_is_found_and_hidden_whole():
    found = find_secrets(SETTINGS_PY)
    hidden = [SETTINGS_PY[s.start:s.end] for s in found]
    assert hidden == list(VALUES)
    assert [s.line for s in found] == [3, 4, 5, 6, 7]
    redactor = Redactor()
    clean = redactor.redact(SETTINGS_PY)
    assert not any(v in clean for v in VALUES) and "DEBUG = True" in clean
    assert redactor.restore(clean) == SETTINGS_PY


def test_a_private_key_block_is_hidden_entirely():
    pem = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
           "AAAAAAABAAAAMwAAAAtzc2gtZWQyNTUxOQ\n-----END OPENSSH PRIVATE KEY-----\n")
    clean = Redactor().redact("key = '''\n" + pem + "'''\n")
    assert "b3BlbnNz" not in clean and "AAAAMwAAAAtz" not in clean


def test_the_patterns_are_detect_secrets_own_and_a_damaged_cache_heals():
    secret_patterns.patterns.cache_clear()
    compiled, source = secret_patterns.patterns()
    assert source.startswith("detect-secrets ")
    kinds = {kind for kind, _ in compiled}
    assert {"AWS Access Key", "GitHub Token", "Stripe Access Key", "Slack Token",
            "JSON Web Token", "Private Key"} <= kinds
    cache = paths.cache_dir() / secret_patterns.CACHE_NAME.format(version=source.split()[1])
    assert cache.is_file()
    cache.write_bytes(b"\x00garbage{")
    secret_patterns.patterns.cache_clear()
    assert secret_patterns.patterns()[0] == compiled
    assert json.loads(cache.read_text())  # rewritten


def test_no_false_positives_in_real_library_code():
    # published code written by others: the requests and rich packages' sources
    import requests
    import rich

    files = [*Path(requests.__file__).parent.glob("*.py"), *Path(rich.__file__).parent.glob("*.py")]
    assert len(files) > 50
    flagged = [(f.name, s.kind) for f in files for s in find_secrets(f.read_text("utf-8"))]
    assert flagged == []


def test_ask_never_shows_the_model_a_key_and_says_so(secret_repo, scripted):
    engine = scripted("The settings hold keys.")
    result = runner.invoke(app, ["ask", "-f", "settings.py", "what is in the settings?"])
    assert result.exit_code == 0, result.output
    seen = engine.calls[0].prompt
    assert "settings.py" in seen and "DEBUG = True" in seen
    assert not [v for v in VALUES if v in seen]
    assert "secret value(s) kept out of the prompt" in result.stderr


def test_repository_context_is_redacted_too(secret_repo, scripted):
    engine = scripted("ok")
    result = runner.invoke(app, ["ask", "where is STRIPE_KEY set?"])
    assert result.exit_code == 0, result.output
    assert "STRIPE_KEY" in engine.calls[0].prompt  # the file was packed...
    assert not [v for v in VALUES if v in engine.calls[0].prompt]  # ...without its values


def test_a_staged_diff_with_a_key_reaches_the_reviewer_redacted(secret_repo, scripted):
    (secret_repo / "deploy.py").write_text(f'TOKEN = "{GITHUB}"\n')
    git(secret_repo, "add", "deploy.py")
    engine = scripted('{"findings": []}')
    runner.invoke(app, ["review", "--staged", "--format", "json", "--no-cache"])
    assert engine.calls and GITHUB not in engine.calls[0].prompt


def test_an_edit_quoting_a_placeholder_keeps_the_real_key(secret_repo, scripted):
    mark = "[REDACTED AWS Access Key #1]"
    reply = (f'settings.py\n<<<<<<< SEARCH\nAWS_ACCESS_KEY_ID = "{mark}"\n=======\n'
             f'AWS_ACCESS_KEY_ID = "{mark}"  # rotated yearly\n>>>>>>> REPLACE\n')
    engine = scripted(reply)
    result = runner.invoke(app, ["edit", "comment the key", "settings.py", "--yes"])
    assert result.exit_code == 0, result.output
    assert mark in engine.calls[0].messages[-1].content
    text = (secret_repo / "settings.py").read_text()
    assert f'AWS_ACCESS_KEY_ID = "{AWS}"  # rotated yearly' in text and mark not in text


def test_an_answer_quoting_a_placeholder_across_stream_pieces_shows_the_value(secret_repo, scripted):
    scripted("The key is [REDACTED GitHub Token #3] in settings.py.")
    result = runner.invoke(app, ["ask", "-f", "settings.py", "which token?"])
    assert f"The key is {GITHUB} in settings.py." in result.stdout


@pytest.mark.parametrize("path", [".envrc", "deploy/secret.yaml", "infra/prod.tfvars",
                                  "infra/terraform.tfstate", ".kube/config",
                                  "home/.docker/config.json", ".env.local", "id_ed25519"])
def test_secret_files_are_never_packed(path):
    assert path_skip_reason(path) == "secret-looking name"


@pytest.mark.parametrize("path", ["app.kube/config", "src/docker/config.json", "aws/credentials_test.go",
                                  "kube/config.py", "docs/.kube/config.md"])
def test_ordinary_files_named_like_credential_folders_are_kept(path):
    assert path_skip_reason(path) is None


def test_the_scan_skips_secret_files_of_a_real_repository(secret_repo):
    for rel in (".envrc", "secret.yaml", "prod.tfvars", "terraform.tfstate", ".kube/config",
                ".docker/config.json"):
        target = secret_repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"token: {GITHUB}\n")
    scan = scan_files(secret_repo)
    listed = {f.path for f in scan.files}
    assert "settings.py" in listed
    assert {p for p, why in scan.skipped if why == "secret-looking name"} >= {
        ".envrc", "secret.yaml", "prod.tfvars", "terraform.tfstate", ".kube/config",
        ".docker/config.json"}


def test_naming_a_secrets_file_with_f_warns(secret_repo, scripted):
    (secret_repo / ".envrc").write_text(f"export GITHUB_TOKEN={GITHUB}\nexport MODE=dev\n")
    engine = scripted("ok")
    result = runner.invoke(app, ["ask", "-f", ".envrc", "what mode?"])
    assert result.exit_code == 0, result.output
    assert ".envrc looks like a secrets file" in result.stderr
    assert "MODE=dev" in engine.calls[0].prompt and GITHUB not in engine.calls[0].prompt
