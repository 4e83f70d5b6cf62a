"""A user's own function, named in a job spec or on the command line.

Two forms, as users write them:

* ``"module:function"`` (``"skimage.feature:canny"``, ``"mylab.seg:segment"``):
  a module importable here and on the workers; dotted names after the colon
  reach into classes or submodules (``"pkg.mod:Class.method"``);
* ``"path/to/file.py:function"``: a file that need not be on a shared file
  system. It is loaded here and its functions are pickled *by value*
  (``cloudpickle.register_pickle_by_value``), so the code travels to the
  workers with each task; the file's SHA-256 is the function's ``digest``,
  recorded in the run so a resume with a changed file is refused.

Functions come only from job specs and the command line, never from site
profiles: a profile stays data. Every refusal is one ``JobSpecError`` line that
names where the function was given (``--fn``, ``step 2``, ``[map] function``).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle

from hpcscale.errors import JobSpecError


@dataclass(frozen=True)
class UserFunction:
    """A loaded user function and where it came from."""

    spec: str  # as the user wrote it
    module: str  # the module to import on a worker ("" for a file, shipped by value)
    qualname: str
    path: Path | None  # the file of a "file.py:function" spec
    digest: str  # sha256 of the file (file specs) or of the module's source file ("" if none)
    func: Callable[..., Any]

    @property
    def label(self) -> str:
        return self.spec

    def describe(self) -> dict[str, Any]:
        """What a run records of the function (``plan.json``, the map index)."""
        return {"function": self.spec, "module": self.module, "qualname": self.qualname,
                "path": str(self.path) if self.path else None, "digest": self.digest}


def split_spec(spec: str, where: str) -> tuple[str, str]:
    """``"target:attr"`` -> ``(target, attr)``; a one-line error names ``where``."""
    if not isinstance(spec, str) or spec.count(":") < 1:
        raise JobSpecError(
            f"{where}: {spec!r} is not a function; write module:function "
            "(e.g. skimage.filters:sobel) or path/to/file.py:function"
        )
    target, _, attr = spec.rpartition(":")
    if not target or not attr or not all(p.isidentifier() for p in attr.split(".")):
        raise JobSpecError(
            f"{where}: {spec!r} is not a function; write module:function "
            "(e.g. skimage.filters:sobel) or path/to/file.py:function"
        )
    return target, attr


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _last_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    return text.splitlines()[-1] if text else type(err).__name__


def _load_file(path: Path, where: str, spec: str) -> Any:
    """The module of a user's file, compiled from the very bytes its digest is of (not
    from ``__pycache__``, whose timestamp check misses a file rewritten within the
    same second at the same size), so the code that runs is the code recorded."""
    if not path.is_file():
        raise JobSpecError(f"{where}: {spec!r}: no such file {path}")
    try:
        source = path.read_bytes()
    except OSError as err:
        raise JobSpecError(f"{where}: {spec!r}: cannot read {path} ({err.strerror})") from None
    digest = hashlib.sha256(source).hexdigest()
    # one module per file and content: two copies of a file are two modules (each its
    # own __file__), and a changed file loads again
    where_hash = hashlib.sha256(f"{path}\0{digest}".encode()).hexdigest()[:12]
    name = f"hpcscale_user_{path.stem.replace('-', '_')}_{where_hash}"
    if name in sys.modules:
        return sys.modules[name], digest
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)  # the user's own code
    except BaseException as err:  # the user's file: any error is theirs, reported in a line
        del sys.modules[name]
        if isinstance(err, KeyboardInterrupt):
            raise
        raise JobSpecError(
            f"{where}: {spec!r}: {path} fails to load ({_last_line(err)})"
        ) from None
    cloudpickle.register_pickle_by_value(module)
    return module, digest


def load(spec: str, *, where: str = "--fn", base: Path | None = None) -> UserFunction:
    """Load the function ``spec`` names; ``base`` resolves a relative file path
    (the job spec's folder). Raises a one-line ``JobSpecError``."""
    target, attr = split_spec(spec, where)
    path: Path | None = None
    if target.endswith(".py") or "/" in target or target.startswith("."):
        path = Path(target).expanduser()
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        path = path.resolve()
        module, digest = _load_file(path, where, spec)
        module_name = ""
    else:
        try:
            module = importlib.import_module(target)
        except BaseException as err:  # ImportError, or anything the module raises on import
            if isinstance(err, KeyboardInterrupt):
                raise
            raise JobSpecError(
                f"{where}: module {target!r} does not import with {sys.executable} "
                f"({_last_line(err)})"
            ) from None
        module_name = target
        source = getattr(module, "__file__", None)
        digest = _digest(Path(source)) if source and Path(source).is_file() else ""
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise JobSpecError(f"{where}: {target!r} has no function {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise JobSpecError(f"{where}: {spec!r} is a {type(obj).__name__}, not a function")
    return UserFunction(spec=spec, module=module_name, qualname=attr, path=path,
                        digest=digest, func=obj)


def check_call(fn: UserFunction, where: str, args: tuple[Any, ...], kwargs: dict[str, Any],
               expected: str) -> None:
    """Refuse a function that cannot be called as ``fn(*args, **kwargs)`` (its
    signature, not its result); ``expected`` says the form, e.g. ``f(block, **kwargs)``."""
    try:
        sig = inspect.signature(fn.func)
    except (TypeError, ValueError):
        return  # builtins and ufuncs without a signature: the call itself will tell
    try:
        sig.bind(*args, **kwargs)
    except TypeError as err:
        raise JobSpecError(
            f"{where}: {fn.spec} cannot be called as {expected} with "
            f"kwargs {sorted(kwargs) or '{}'} ({err})"
        ) from None


def import_on_worker(module: str) -> str | None:
    """Run on a worker: None when ``module`` imports there, else one line saying why
    (with the worker's Python)."""
    if not module:
        return None
    try:
        importlib.import_module(module)
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt):
            raise
        return f"{_last_line(err)} (python {sys.executable})"
    return None
