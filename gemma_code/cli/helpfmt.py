"""--help that reads like a man page: no Python types beside every option.

Typer 0.29's rich help prints each parameter's Python type (`<bool>`, `<int range> [x>=0]`)
in a column of its own, and wraps required arguments in braces in the usage line
(`{question}`). We show a short metavar only where a value is expected (N, TEXT, PATH),
nothing for on/off flags, and arguments in upper case as click does (`[QUESTION]`). The
ranges are still enforced; the help text states the ones that matter.
"""

from __future__ import annotations

from typing import Any

_WORDS = {"int": "N", "float": "NUM", "str": "TEXT", "Path": "PATH", "list[Path]": "PATH"}


def _option_type(self: Any, ctx: Any) -> str | None:
    if self.is_flag or self.count:
        return None
    if self.metavar is not None:
        return str(self.metavar)
    try:
        bare = self.bare_type()
    except (AttributeError, AssertionError):
        return None
    return _WORDS.get(bare, "VALUE")


def _argument_usage(self: Any) -> str:
    name = str(self.metavar) if self.metavar is not None else str(self.name).upper()
    if self.metavar is None and not self.required:
        name = f"[{name}]"
    if self.nargs != 1:
        name += "..."
    return name


def _no_range(self: Any) -> None:
    return None


def _no_type(self: Any, ctx: Any) -> None:
    return None


def install() -> None:
    """Patch Typer's help rendering (once; harmless when its internals moved)."""
    from typer import core

    option, argument = core.TyperOption, core.TyperArgument
    if hasattr(option, "display_type_rich"):
        option.display_type_rich = _option_type  # type: ignore[method-assign]
        argument.display_type_rich = _no_type  # type: ignore[method-assign]
    for cls in (option, argument):
        if hasattr(cls, "_get_number_range_help_str"):
            cls._get_number_range_help_str = _no_range  # type: ignore[method-assign]
    if hasattr(argument, "_usage_display_name"):
        argument._usage_display_name = _argument_usage  # type: ignore[method-assign]
