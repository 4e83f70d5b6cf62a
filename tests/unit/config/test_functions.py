"""User functions: the two spellings, what travels to workers, one-line refusals."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

from hpcscale.config import functions
from hpcscale.errors import JobSpecError


def test_module_function_imports_and_records_its_source_digest() -> None:
    fn = functions.load("scipy.ndimage:uniform_filter")
    assert fn.func is __import__("scipy.ndimage").ndimage.uniform_filter
    assert fn.module == "scipy.ndimage"
    assert fn.path is None
    assert len(fn.digest) == 64


def test_a_file_function_travels_by_value(tmp_path: Path) -> None:
    src = tmp_path / "seg.py"
    src.write_text("import numpy as np\nOFFSET = 3\ndef seg(a, k=1):\n    return a * k + OFFSET\n")
    fn = functions.load(f"{src}:seg")
    assert fn.module == ""
    assert fn.path == src.resolve()
    payload = cloudpickle.dumps(fn.func)
    # A fresh interpreter that has never seen the file runs the function from the bytes.
    code = ("import pickle, sys, numpy as np; f = pickle.loads(sys.stdin.buffer.read()); "
            "print(f(np.arange(3), k=2).tolist())")
    out = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True,
                         cwd="/", check=True)
    assert out.stdout.decode().strip() == "[3, 5, 7]"
    assert pickle.loads(payload)(np.ones(1))[0] == 4


def test_a_changed_file_has_another_digest(tmp_path: Path) -> None:
    src = tmp_path / "f.py"
    src.write_text("def f(a):\n    return a\n")
    first = functions.load("f.py:f", base=tmp_path).digest
    src.write_text("def f(a):\n    return a + 1\n")
    second = functions.load("f.py:f", base=tmp_path)
    assert second.digest != first
    assert second.func(1) == 2


@pytest.mark.parametrize(("spec", "words"), [
    ("sobel", "is not a function; write module:function"),
    ("skimage.filters:", "is not a function"),
    ("no_such_module_xyz:f", "module 'no_such_module_xyz' does not import with"),
    ("numpy:no_such_fn", "'numpy' has no function 'no_such_fn'"),
    ("numpy:pi", "is a float, not a function"),
    ("missing.py:f", "no such file"),
])
def test_bad_functions_are_one_line(spec: str, words: str, tmp_path: Path) -> None:
    with pytest.raises(JobSpecError, match=None) as info:
        functions.load(spec, where="--fn", base=tmp_path)
    msg = str(info.value)
    assert msg.startswith("--fn: ")
    assert words in msg
    assert "\n" not in msg


def test_a_file_that_raises_on_load_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import no_such_dependency_xyz\ndef f(a):\n    return a\n")
    with pytest.raises(JobSpecError, match=r"fails to load \(ModuleNotFoundError: No module"):
        functions.load("bad.py:f", where="step 1", base=tmp_path)
    (tmp_path / "syn.py").write_text("def f(a:\n")
    with pytest.raises(JobSpecError, match=r"syn.py fails to load \(SyntaxError"):
        functions.load("syn.py:f", base=tmp_path)


def test_a_bad_signature_is_refused_before_any_call(tmp_path: Path) -> None:
    (tmp_path / "g.py").write_text("def g(path):\n    return None\n")
    fn = functions.load("g.py:g", base=tmp_path)
    with pytest.raises(JobSpecError, match=r"cannot be called as f\(path, out_dir, \*\*kwargs\)"):
        functions.check_call(fn, "--fn", ("p", "o"), {}, "f(path, out_dir, **kwargs)")
    functions.check_call(fn, "--fn", ("p",), {}, "f(path)")


def test_import_on_worker_says_why_with_the_python() -> None:
    assert functions.import_on_worker("json") is None
    assert functions.import_on_worker("") is None
    said = functions.import_on_worker("no_such_module_xyz")
    assert said is not None
    assert said.startswith("ModuleNotFoundError: No module named 'no_such_module_xyz'")
    assert sys.executable in said
