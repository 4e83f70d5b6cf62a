"""Site profiles: typed, immutable, validated before anything is submitted.

A profile is one TOML file named ``<name>.toml``. Files are looked up on a
search path where later directories win: the built-ins shipped with
hpcscale, then each directory of ``HPCSCALE_SITE_PATH`` (colon-separated, the
way a lab shares a project folder), then the user's own config directory.
A profile may ``extends`` another; its ``[slurm]``/``[local]`` keys override
the parent's key by key, and :class:`ResolvedProfile` remembers which file
every value came from.

Profiles are data, never code: every value that reaches a job script is
checked against a strict pattern here, because dask-jobqueue pastes them
verbatim into the script (a newline in a partition becomes a shell line, and
sbatch silently stops reading ``#SBATCH`` lines after it).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hpcscale import units
from hpcscale._fs import read_toml
from hpcscale._validation import Problem, explain, problems
from hpcscale.errors import ProfileError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
# SLURM names: partitions may be a comma list; accounts and qos are single names.
_SLURM_NAME = r"^[A-Za-z0-9_.\-]+$"
_PARTITION = r"^[A-Za-z0-9_.\-]+(,[A-Za-z0-9_.\-]+)*$"
_INTERFACE = r"^[A-Za-z0-9_.\-:@]{1,15}$"
# `--key=value` or `--flag`; no whitespace, quotes or shell metacharacters.
_DIRECTIVE = r"^--?[A-Za-z][A-Za-z0-9\-]*(=[A-Za-z0-9_.,:/%@+=\-\[\]]+)?$"
# Paths may use $VARS (e.g. $TMPDIR on node-local disk), nothing else of shell.
_PATH = r"^[A-Za-z0-9_./\-~${}]+$"


def _memory(value: Any) -> int:
    return units.parse_bytes(value)


AUTO = "auto"  # walltime = "auto": chosen per run from the prediction
DEFAULT_WALLTIME = 3600


def _walltime(value: Any) -> int | str:
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        return units.parse_walltime(value)
    except ValueError as err:
        raise ValueError(str(err).replace("), got", ') or "auto", got', 1)) from None


def _no_newline(value: Any) -> Any:
    if isinstance(value, str) and ("\n" in value or "\r" in value):
        raise ValueError("must be a single line (a newline would become a shell line)")
    return value


Bytes = Annotated[int, BeforeValidator(_memory)]
Walltime = Annotated[int | Literal["auto"], BeforeValidator(_walltime)]
SlurmName = Annotated[str, BeforeValidator(_no_newline), Field(pattern=_SLURM_NAME)]
PathStr = Annotated[str, BeforeValidator(_no_newline), Field(pattern=_PATH)]


class SlurmSettings(BaseModel):
    """The ``[slurm]`` table: what each worker job asks SLURM for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partition: Annotated[str, BeforeValidator(_no_newline), Field(pattern=_PARTITION)]
    account: SlurmName | None = None
    qos: SlurmName | None = None
    walltime: Walltime = DEFAULT_WALLTIME
    cores: int = Field(1, ge=1, le=4096)
    processes: int = Field(1, ge=1, le=4096)
    memory: Bytes = 4 * 1024**3
    max_jobs: int = Field(4, ge=1, le=10000)
    interface: (
        Annotated[str, BeforeValidator(_no_newline), Field(pattern=_INTERFACE)] | None
    ) = None
    # The compute nodes' name for their interface, where it differs from the
    # login node's (default: the same as `interface`).
    worker_interface: (
        Annotated[str, BeforeValidator(_no_newline), Field(pattern=_INTERFACE)] | None
    ) = None
    extra_directives: tuple[
        Annotated[str, BeforeValidator(_no_newline), Field(pattern=_DIRECTIVE)], ...
    ] = ()
    prologue: tuple[Annotated[str, BeforeValidator(_no_newline)], ...] = ()
    python: PathStr | None = None
    local_directory: PathStr | None = None
    log_directory: PathStr | None = None

    @model_validator(mode="after")
    def _fit(self) -> SlurmSettings:
        if self.cores % self.processes:
            raise ValueError(
                f"cores ({self.cores}) must be a multiple of processes ({self.processes}): "
                "each dask worker gets cores/processes threads"
            )
        if self.memory // self.processes < 64 * units.MIB:
            raise ValueError("memory per worker process must be at least 64MiB")
        return self

    @field_validator("extra_directives")
    @classmethod
    def _not_owned(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        owned = ("-p", "--partition", "-A", "--account", "-t", "--time", "--mem", "--qos",
                 "-n", "--ntasks", "--cpus-per-task", "-c", "-J", "--job-name", "-o", "-e",
                 "--output", "--error")
        for d in value:
            key = d.split("=", 1)[0]
            if key in owned:
                raise ValueError(f"{d!r} is set from the profile's own keys; use those instead")
        return value

    @property
    def auto_walltime(self) -> bool:
        """``walltime = "auto"``: each run asks for its predicted time plus a margin."""
        return self.walltime == AUTO

    @property
    def walltime_seconds(self) -> int:
        """The walltime in seconds; for ``"auto"``, :data:`DEFAULT_WALLTIME`, what a run
        without a prediction asks for (within the partition's MaxTime)."""
        return DEFAULT_WALLTIME if isinstance(self.walltime, str) else self.walltime

    @property
    def threads(self) -> int:
        """Threads per dask worker process."""
        return self.cores // self.processes

    @property
    def worker_memory(self) -> int:
        """Bytes each dask worker may use: what SLURM grants, split between processes."""
        return units.slurm_mem_bytes(self.memory) // self.processes


class LocalSettings(BaseModel):
    """The ``[local]`` table: a LocalCluster on this machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workers: int | None = Field(None, ge=1, le=1024)
    threads: int | None = Field(None, ge=1, le=1024)
    memory: Bytes | None = None
    local_directory: PathStr | None = None
    # "auto": a run with one worker uses dask's threaded scheduler in its own process;
    # "distributed": always a LocalCluster (a dashboard, worker processes)
    scheduler: Literal["auto", "distributed"] = "auto"


class _Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""


class SlurmProfile(_Profile):
    """A site whose workers are SLURM jobs (the ``[slurm]`` table says what they ask for)."""

    kind: Literal["slurm"] = "slurm"
    slurm: SlurmSettings


class LocalProfile(_Profile):
    """A site whose workers are processes on this machine (a dask LocalCluster)."""

    kind: Literal["local"] = "local"
    local: LocalSettings = LocalSettings()


# A resolved site profile (after ``extends``): the one object the rest reads. The
# backend is its type: code that differs per backend matches on it.
SiteProfile = Annotated[SlurmProfile | LocalProfile, Field(discriminator="kind")]
PROFILE_TYPES: dict[str, type[SlurmProfile] | type[LocalProfile]] = {
    "slurm": SlurmProfile, "local": LocalProfile}


_TOP_KEYS = ("name", "description", "extends", "kind", "slurm", "local")
_TABLES: dict[str, type[BaseModel]] = {"slurm": SlurmSettings, "local": LocalSettings}


@dataclass(frozen=True)
class ProfileFile:
    """One profile file found on the search path."""

    name: str
    path: Path
    origin: str  # "built-in", "site path", "user"
    shadows: tuple[Path, ...] = ()


@dataclass(frozen=True)
class ResolvedProfile:
    """A profile with the file every value came from (for ``site show``)."""

    profile: SiteProfile
    files: tuple[Path, ...]  # the extends chain, the named profile first
    sources: Mapping[str, Path] = field(default_factory=dict)  # "slurm.memory" -> file


def builtin_dir() -> Path:
    """Built-in profiles: in the wheel, or ``site-configs/`` of a source checkout."""
    package = Path(__file__).resolve().parents[1]  # hpcscale/, this file is in config/
    for candidate in (package / "site-configs", package.parents[1] / "site-configs"):
        if candidate.is_dir():
            return candidate
    return package / "site-configs"


def user_dir() -> Path:
    """The user's own profiles (``~/.config/hpcscale/sites`` on Linux)."""
    override = os.environ.get("HPCSCALE_USER_SITES")
    if override:
        return Path(override)
    return Path(platformdirs.user_config_dir("hpcscale")) / "sites"


def search_path() -> list[tuple[Path, str]]:
    """Directories searched for profiles, lowest precedence first."""
    dirs: list[tuple[Path, str]] = [(builtin_dir(), "built-in")]
    for entry in os.environ.get("HPCSCALE_SITE_PATH", "").split(":"):
        if entry.strip():
            dirs.append((Path(entry).expanduser(), "site path"))
    dirs.append((user_dir(), "user"))
    return dirs


def discover() -> dict[str, ProfileFile]:
    """Every profile name on the search path, with the file that wins."""
    found: dict[str, ProfileFile] = {}
    for directory, origin in search_path():
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            name = path.stem
            earlier = found.get(name)
            shadows = (*earlier.shadows, earlier.path) if earlier else ()
            found[name] = ProfileFile(name, path, origin, shadows)
    return found


def writable_by_others(path: Path) -> str | None:
    """Why ``path`` (a profile file or its directory) is unsafe to trust, or None.

    A file another user can write lets them inject commands into your jobs.
    """
    for target in (path, path.parent):
        try:
            st = target.stat()
        except OSError:
            continue
        if st.st_mode & stat.S_IWOTH and not (target.is_dir() and st.st_mode & stat.S_ISVTX):
            return f"{target} is writable by every user"
        if st.st_mode & stat.S_IWGRP:
            return f"{target} is writable by its group"
    # Owned by another user (a lab lead sharing with `site share`) is fine: only
    # the owner can change it, and trusting the lead is the point of sharing.
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    return read_toml(path, ProfileError, "profile")


def _check_keys(data: Mapping[str, Any], path: Path) -> None:
    for key, value in data.items():
        if key not in _TOP_KEYS:
            raise ProfileError(
                f"profile {path}: unknown key {key!r}; valid keys: {', '.join(_TOP_KEYS)}"
            )
        if key in _TABLES:
            if not isinstance(value, dict):
                raise ProfileError(f"profile {path}: [{key}] must be a table, got {value!r}")
            for sub in value:
                if sub not in _TABLES[key].model_fields:
                    unknown = Problem((key, str(sub)), "unknown", value[sub], "")
                    raise ProfileError(f"profile {path}: "
                                       + explain(unknown, valid_keys=_valid_keys))


def _pydantic_message(err: ValidationError, path: Path) -> str:
    first = problems(err)[0]
    forms = _PATTERN_HELP if first.kind == "pattern" else None
    return f"profile {path}: " + explain(first, valid_keys=_valid_keys, forms=forms)


def _valid_keys(loc: tuple[str, ...]) -> list[str]:
    table = _TABLES.get(loc[0]) if loc else None
    return list((table or _Profile).model_fields) + ([] if table else ["kind", "slurm", "local"])


_PATTERN_HELP = {
    "partition": "made of letters, digits, _ . - (commas between partitions)",
    "account": "made of letters, digits, _ . -",
    "qos": "made of letters, digits, _ . -",
    "interface": "a network interface name such as eth0 or ib0",
    "worker_interface": "a network interface name such as eth0 or ib0",
    "extra_directives": "one sbatch option per entry, as --key=value or --flag",
    "python": "a path without spaces or shell characters",
    "local_directory": "a path ($VARS allowed) without spaces or shell characters",
    "log_directory": "a path ($VARS allowed) without spaces or shell characters",
}


def load(
    name: str, *, trust: bool = False, files: Mapping[str, ProfileFile] | None = None
) -> ResolvedProfile:
    """Find, read, merge (``extends``) and validate the profile ``name``.

    Raises :class:`ProfileError` naming the file, key, value and what is allowed.
    Unless ``trust``, a file that other users can write is refused.
    """
    if not _NAME_RE.match(name):
        raise ProfileError(f"site {name!r}: not a profile name (letters, digits, _ . -)")
    files = discover() if files is None else files
    chain: list[tuple[Path, dict[str, Any]]] = []
    current: str | None = name
    while current is not None:
        if current not in files:
            known = ", ".join(sorted(files)) or "none"
            what = "site" if not chain else f"profile {chain[-1][0]}: extends"
            raise ProfileError(f"{what} {current!r} is not a known profile (known: {known})")
        entry = files[current]
        if any(p == entry.path for p, _ in chain):
            loop = " -> ".join(p.stem for p, _ in chain) + f" -> {current}"
            raise ProfileError(f"profile {entry.path}: extends loops ({loop})")
        if not trust and entry.origin != "built-in":
            reason = writable_by_others(entry.path)
            if reason:
                raise ProfileError(
                    f"profile {entry.path}: refused because {reason}; anyone who can write it "
                    "can run commands in your jobs. Fix the permissions (chmod go-w) or pass "
                    "--trust-profiles if you trust them"
                )
        data = _read_toml(entry.path)
        _check_keys(data, entry.path)
        declared = data.get("name", entry.name)
        if declared != entry.name:
            raise ProfileError(
                f"profile {entry.path}: name = {declared!r} but the file is {entry.name}.toml; "
                "they must match"
            )
        chain.append((entry.path, data))
        parent = data.get("extends")
        if parent is not None and not isinstance(parent, str):
            raise ProfileError(f"profile {entry.path}: extends = {parent!r}: must be a name")
        current = parent

    merged: dict[str, Any] = {"name": name}
    sources: dict[str, Path] = {}
    for path, data in reversed(chain):  # root ancestor first, named profile last
        for key, value in data.items():
            if key in ("extends", "name"):
                continue
            if key in _TABLES:
                table = merged.setdefault(key, {})
                for sub, subvalue in value.items():
                    table[sub] = subvalue
                    sources[f"{key}.{sub}"] = path
            else:
                merged[key] = value
                sources[key] = path
    profile = _build(merged, sources, chain[0][0])
    return ResolvedProfile(profile, tuple(p for p, _ in chain), sources)


def _build(merged: dict[str, Any], sources: Mapping[str, Path], named_path: Path) -> SiteProfile:
    """The profile of the merged ``extends`` chain; its type is its kind (the backend)."""
    kind = merged.setdefault("kind", "slurm" if "slurm" in merged else "local")
    if kind not in PROFILE_TYPES:
        raise ProfileError(f"profile {sources.get('kind', named_path)}: kind = {kind!r}: must "
                           f"be one of {', '.join(PROFILE_TYPES)}")
    other = next((t for t in _TABLES if t != kind and t in merged), None)
    if other is not None:
        where = next((p for k, p in sources.items() if k.startswith(f"{other}.")), named_path)
        raise ProfileError(
            f"profile {where}: a {kind} profile has no "
            f"[{other}] table (it would be ignored); remove it, or set kind = \"{other}\"")
    try:
        profile: SiteProfile = PROFILE_TYPES[kind].model_validate(merged)
    except ValidationError as err:
        first = err.errors()[0]["loc"]
        key = ".".join(str(p) for p in first if not isinstance(p, int))
        blame = sources.get(key, named_path)
        raise ProfileError(_pydantic_message(err, blame)) from err
    return profile


def load_file_table(path: Path) -> dict[str, Any]:
    """The raw TOML of one profile file (for ``site share``)."""
    return _read_toml(path)
