"""Which files of a repository the context builder may read, and why the others are skipped."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from gemma_code import gitops
from gemma_code.errors import GitError

# Folders of other people's code or of build output: never worth the model's attention.
VENDORED_DIRS = frozenset({
    "node_modules", "vendor", "vendors", "third_party", "thirdparty", "bower_components",
    ".venv", "venv", "site-packages", "__pycache__", ".tox", ".nox", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".git", ".hg", ".svn", ".next", ".nuxt", ".gradle",
    ".idea", ".eggs",
})
LOCK_FILES = frozenset({
    "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "cargo.lock",
    "gemfile.lock", "composer.lock", "go.sum", "uv.lock", "pipfile.lock", "npm-shrinkwrap.json",
    "bun.lockb", "flake.lock", "pdm.lock",
})
_BINARY = """
.png .jpg .jpeg .gif .bmp .ico .icns .webp .tif .tiff .psd .svgz .mp3 .mp4 .wav .ogg .flac .mov .avi
.mkv .webm .zip .gz .tgz .bz2 .xz .zst .7z .rar .tar .jar .war .whl .egg .pyc .pyo .so .dylib .dll .exe
.o .a .lib .obj .class .wasm .bin .dat .db .sqlite .sqlite3 .pdf .doc .docx .xls .xlsx .ppt .pptx .woff
.woff2 .ttf .otf .eot .gguf .safetensors .pt .pth .onnx .npy .npz .pkl .parquet .mo .DS_Store
"""
BINARY_EXTENSIONS = frozenset(_BINARY.split())
GENERATED_SUFFIXES = (".min.js", ".min.css", ".js.map", ".css.map", ".map", "_pb2.py",
                      "_pb2_grpc.py", ".pb.go", ".pb.cc", ".pb.h", ".designer.cs")
SECRET_PATTERNS = (
    ".env", ".env.*", "*.env", "*.pem", "*.key", "*.p12", "*.pfx", "*.keystore", "*.jks",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.ppk", "credentials", "credentials.*",
    "*credentials*.json", ".netrc", ".pgpass", ".pypirc", ".npmrc", ".git-credentials",
    "secrets.*", "*.secret", "*.secrets", "service-account*.json", ".htpasswd",
    ".envrc", "secret.yaml", "secret.yml", "*-secret.yaml", "*-secret.yml", "*.tfvars",
    "*.tfvars.json", "*.tfstate", "*.tfstate.backup", "kubeconfig", ".dockercfg",
)
# folder/name pairs that hold credentials though their names alone are ordinary
SECRET_PATHS = (".kube/config", ".docker/config.json", ".aws/credentials", ".aws/config",
                ".config/gh/hosts.yml")
PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----")
# Beyond this many files the walk stops listing: the notice says so.
MAX_LISTED = 200_000


@dataclass(frozen=True)
class RepoFile:
    """A candidate file: POSIX path relative to the root, with the stat that keys its cache row."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class FileScan:
    """What a scan found: the candidates, what it skipped and why, and git's hints."""

    root: Path
    files: list[RepoFile] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    in_git: bool = False
    dirty: list[str] = field(default_factory=list)
    recent: list[str] = field(default_factory=list)


_SECRET_NAME = re.compile("|".join(fnmatch.translate(p) for p in SECRET_PATTERNS))
# the folder/name pairs as one search: the whole path, or its end after a "/"
_SECRET_PATH = re.compile("(?:^|/)(?:" + "|".join(re.escape(p) for p in SECRET_PATHS) + ")\\Z")


def is_secret_path(path: str) -> bool:
    """True for file names (and folder/name pairs) that usually hold keys, tokens or passwords."""
    lower = path.replace("\\", "/").lower()
    if _SECRET_PATH.search(lower) is not None:
        return True
    return _SECRET_NAME.match(lower.rsplit("/", 1)[-1]) is not None


def has_private_key(data: bytes) -> bool:
    """True when the text contains a PEM private-key header."""
    return PRIVATE_KEY.search(data) is not None


def path_skip_reason(path: str) -> str | None:
    """Why a path is skipped from its name alone (None: keep it)."""
    parts = path.split("/")
    for part in parts[:-1]:
        if part in VENDORED_DIRS or part.endswith(".egg-info"):
            return "vendored or tool folder"
    name = parts[-1]
    lower = name.lower()
    if is_secret_path(path):
        return "secret-looking name"
    if lower in LOCK_FILES or lower.endswith(".lock"):
        return "lock file"
    dot = lower.rfind(".")
    if dot >= 0 and (lower[dot:] in BINARY_EXTENSIONS or name[dot:] in BINARY_EXTENSIONS):
        return "binary"
    if lower.endswith(GENERATED_SUFFIXES):
        return "generated or minified"
    return None


def scan_files(root: Path, *, max_file_bytes: int = 1_000_000, named: Iterable[str] = ()) -> FileScan:
    """List the candidate files of `root`: git's view inside a repository, else a walk."""
    root = Path(root).resolve()
    scan = FileScan(root=root)
    keep = {p.replace(os.sep, "/") for p in named}
    listed = _git_listing(root, scan)
    if listed is None:
        listed = _walk_listing(root, scan)
    base = str(root)
    for rel in sorted(set(listed)):
        reason = None if rel in keep else path_skip_reason(rel)
        if reason is not None:
            scan.skipped.append((rel, reason))
            continue
        try:
            info = os.lstat(os.path.join(base, rel))
        except FileNotFoundError:
            continue  # deleted but still in git's index: nothing to read
        except OSError as exc:
            scan.skipped.append((rel, f"unreadable ({exc.strerror})"))
            continue
        if stat.S_ISLNK(info.st_mode):
            scan.skipped.append((rel, "symbolic link"))
            continue
        if not stat.S_ISREG(info.st_mode):
            continue  # a submodule folder, a fifo, a socket
        if info.st_size > max_file_bytes and rel not in keep:
            scan.skipped.append((rel, f"over {max_file_bytes:,} bytes"))
            continue
        scan.files.append(RepoFile(rel, info.st_size, info.st_mtime_ns))
    return scan


def _git_listing(root: Path, scan: FileScan) -> list[str] | None:
    """Tracked plus untracked-not-ignored files, with dirty and recent files; None if not git."""
    if not (root / ".git").exists():
        return None
    # independent git processes at once (the wall time of the slowest, not of the sum); the
    # folder is walked once, by `git status`, whose untracked files join the index's list
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="gc-git") as pool:
        cached = pool.submit(gitops.cached_files, root)
        status = pool.submit(gitops.status_entries, root)
        recent = pool.submit(gitops.recent_files, root, 5)
        try:
            listed = cached.result()
        except GitError as exc:  # any failure means "walk instead"
            scan.notes.append(f"git could not list files ({exc.message}); walked the folder")
            return None
        try:
            entries = status.result()
        except GitError:  # git status can fail where ls-files works (a broken submodule)
            entries = []
            try:
                listed = gitops.listed_files(root)  # untracked files, without the dirty hint
            except GitError as exc:
                scan.notes.append(f"git could not list files ({exc.message}); walked the folder")
                return None
    scan.in_git = True
    listed += [path for code, path in entries if code == "??"]
    scan.dirty = sorted({path for _, path in entries})
    try:
        scan.recent = recent.result()
    except GitError:  # an empty repository has no commits to read
        scan.recent = []
    if not listed:
        scan.notes.append("the repository has no files yet")
    return listed


def grep_files(root: Path, names: Iterable[str], limit: int = 2_000) -> list[str]:
    """Files of a git work tree that contain any of `names` as a whole word (git grep)."""
    words = sorted({n for n in names if n.isidentifier()})
    if not words:
        return []
    return gitops.grep_words(root, words[:20], limit)


class _Ignore:
    """The subset of .gitignore rules that matters for a walk: globs, dir/, /anchored, **, !negation."""

    def __init__(self) -> None:
        self.rules: list[tuple[str, str, bool, bool]] = []  # (base, pattern, dir_only, negate)

    def add_file(self, base: str, path: Path) -> None:
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            line = line[1:] if negate else line
            dir_only = line.endswith("/")
            line = line.rstrip("/")
            if not line:
                continue
            if "/" not in line:
                line = "**/" + line  # a bare name matches at any depth below its folder
            self.rules.append((base, line.lstrip("/"), dir_only, negate))

    def ignored(self, rel: str, is_dir: bool) -> bool:
        result = False
        for base, pattern, dir_only, negate in self.rules:
            if dir_only and not is_dir:
                continue
            if base and not rel.startswith(base + "/"):
                continue
            sub = rel[len(base) + 1 :] if base else rel
            if _glob_match(sub, pattern):
                result = not negate
        return result


def _glob_match(path: str, pattern: str) -> bool:
    if pattern.startswith("**/"):
        tail = pattern[3:]
        parts = path.split("/")
        return any(fnmatch.fnmatchcase("/".join(parts[i:]), tail) for i in range(len(parts)))
    return fnmatch.fnmatchcase(path, pattern)


def _walk_listing(root: Path, scan: FileScan) -> list[str]:
    """Walk the folder without following links, honouring .gitignore files on the way."""
    ignore = _Ignore()
    listed: list[str] = []
    for top, dirs, files in os.walk(root, followlinks=False, onerror=lambda exc: None):
        rel_top = os.path.relpath(top, root).replace(os.sep, "/")
        rel_top = "" if rel_top == "." else rel_top
        if ".gitignore" in files:
            ignore.add_file(rel_top, Path(top) / ".gitignore")
        prefix = rel_top + "/" if rel_top else ""
        dirs[:] = sorted(
            d for d in dirs
            if d not in VENDORED_DIRS and not ignore.ignored(prefix + d, True)
        )
        for name in sorted(files):
            rel = prefix + name
            if not ignore.ignored(rel, False):
                listed.append(rel)
        if len(listed) >= MAX_LISTED:
            scan.notes.append(f"stopped listing at {MAX_LISTED:,} files; the rest were not considered")
            break
    return listed
