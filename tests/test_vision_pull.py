"""`models pull` fetches and verifies a model's vision projector (mmproj) with it, from the fake hub."""

from __future__ import annotations

import hashlib

import pytest
from test_models_pull import REPO, HubFile, fake_gguf, hub  # noqa: F401  (hub is a fixture)

from gemma_code.errors import ModelError
from gemma_code.models import find_entry, mmproj_path, user_registry_file
from gemma_code.models.pull import pull, remove

MODEL = "vis-model-Q4_K_M.gguf"
MMPROJ = "mmproj-vis-model-f16.gguf"


def register_vision_model(name: str = "vis") -> None:
    conf = user_registry_file()
    conf.parent.mkdir(parents=True, exist_ok=True)
    with conf.open("a", encoding="utf-8") as out:
        out.write(
            f'[models.{name}]\nhf_repo = "{REPO}"\nhf_file = "{MODEL}"\nmmproj_file = "{MMPROJ}"\n'
            'arch = "gemma4"\ncontext_length = 4096\nsize_gb = 0.003\nvram_gb = 1\n'
        )


def test_pull_fetches_and_verifies_the_mmproj_with_the_model(hub) -> None:  # noqa: F811
    hub.files[f"{REPO}/{MODEL}"] = HubFile(fake_gguf())
    projector = fake_gguf(1_000_000)
    hub.files[f"{REPO}/{MMPROJ}"] = HubFile(projector)
    register_vision_model()
    entry = find_entry("vis")
    assert entry is not None and mmproj_path("vis") is None
    result = pull(entry)
    assert result.mmproj is not None and result.mmproj.verified
    assert result.mmproj.path.name == MMPROJ
    assert result.mmproj.path.parent == result.path.parent
    assert result.mmproj.sha256 == hashlib.sha256(projector).hexdigest()
    assert mmproj_path("vis") == result.mmproj.path
    again = pull(entry)
    assert again.already and again.mmproj is not None and again.mmproj.already
    remove(entry)
    assert mmproj_path("vis") is None and not result.mmproj.path.exists()


def test_a_corrupted_mmproj_is_refused_and_not_kept(hub) -> None:  # noqa: F811
    hub.files[f"{REPO}/{MODEL}"] = HubFile(fake_gguf())
    hub.files[f"{REPO}/{MMPROJ}"] = HubFile(fake_gguf(1_000_000),
                                            sha256=hashlib.sha256(b"other").hexdigest())
    register_vision_model()
    entry = find_entry("vis")
    assert entry is not None
    with pytest.raises(ModelError, match=f"checksum mismatch for {MMPROJ}"):
        pull(entry)
    assert mmproj_path("vis") is None


def test_a_projector_the_hub_lacks_is_a_warning_and_the_model_is_kept(hub) -> None:  # noqa: F811
    from typer.testing import CliRunner

    from gemma_code.cli import app

    hub.files[f"{REPO}/{MODEL}"] = HubFile(fake_gguf())
    register_vision_model()
    result = CliRunner().invoke(app, ["models", "pull", "vis"])
    assert result.exit_code == 0, result.output
    assert f"no vision projector: {REPO} has no file {MMPROJ}" in " ".join(result.stderr.split())
    assert result.stdout.strip().endswith(MODEL)
    assert mmproj_path("vis") is None


def test_registry_model_without_its_projector_names_the_pull_command(tmp_path) -> None:
    from gemma_code.engine.vision import no_vision_error

    register_vision_model()
    error = no_vision_error("vis", tmp_path / MODEL)
    assert error.hint == "fetch it with: gemma-code models pull vis"  # type: ignore[attr-defined]
