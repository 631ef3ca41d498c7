"""What the machine offers: NVIDIA GPUs (through nvidia-smi) and available RAM."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from gemma_code.engine.fit import Memory

MiB = 1024**2


@dataclass(frozen=True)
class Gpu:
    """One GPU as nvidia-smi reports it."""

    index: int
    name: str
    total: int
    free: int
    driver: str = ""


def nvidia_gpus(timeout: float = 5.0) -> list[Gpu]:
    """GPUs listed by nvidia-smi; empty when it is missing or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        result = subprocess.run(
            [exe, "--query-gpu=index,name,memory.total,memory.free,driver_version",
             "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if result.returncode != 0:
        return []
    return parse_nvidia_smi(result.stdout)


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """Parse `nvidia-smi --query-gpu=index,name,memory.total,memory.free,driver_version` CSV."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4:
            continue
        try:
            gpus.append(Gpu(int(parts[0]), parts[1], int(float(parts[2])) * MiB,
                            int(float(parts[3])) * MiB, parts[4] if len(parts) > 4 else ""))
        except ValueError:
            continue
    return gpus


def ram_available() -> int | None:
    """Bytes of RAM available to new work (MemAvailable on Linux), None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def llama_runtime_error() -> str | None:
    """Why llama-cpp-python cannot load here (not installed, a broken build), or None when it can.

    `doctor` asks this before it uses engine/lowlevel.py, which needs the library.
    """
    try:
        import llama_cpp  # noqa: F401
    except (ImportError, OSError) as exc:
        return str(exc) or type(exc).__name__
    return None


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> int:
    """Half the usable cores (one per physical core, not spinning against hyper-threads), 1..16.

    On a loaded 2-core machine 2 threads ran decode 6x slower than 1 (TRAPS.md).
    """
    return max(1, min(cpu_count() // 2, 16))


def GiB_of(size: int) -> float:
    """Bytes as GiB, rounded for display."""
    return round(size / 1024**3, 1)


def memory_for(gpu_offload: bool) -> Memory:
    """Free memory to plan against: the first NVIDIA GPU, else llama.cpp's GPU device, else RAM."""
    ram = ram_available()
    if not gpu_offload:
        return Memory(None, ram_free=ram)
    gpus = nvidia_gpus()
    if gpus:
        return Memory(gpus[0].free, gpus[0].name, ram)
    from gemma_code.engine.lowlevel import devices  # imports llama_cpp: only on this path

    for dev in devices():
        if dev.kind in {"gpu", "igpu"}:
            return Memory(dev.free, dev.description or dev.name, ram)
    return Memory(None, ram_free=ram)
