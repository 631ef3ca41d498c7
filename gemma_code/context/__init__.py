"""The context builder: repository files -> ranked, budgeted context for the prompt."""

from __future__ import annotations

from gemma_code.context.files import find_repo_root

__all__ = ["find_repo_root"]
