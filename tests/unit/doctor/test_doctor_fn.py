"""hpcscale doctor --fn: the user's function loads here (on a local site there is no node)."""

from __future__ import annotations

import json

from helpers import REPO, Cli


def test_doctor_fn_on_a_local_site(cli: Cli) -> None:
    example = REPO / "docs" / "examples" / "clean_json.py"
    r = cli("--json", "doctor", "--site", "local", "--fn", "no_such_module_q:f",
            "--fn", f"{example}:clean", "--fn", "scipy.ndimage:uniform_filter")
    assert r.code == 1, r
    checks = [c for c in json.loads(r.out)["checks"] if c["name"] == "function"]
    assert [c["status"] for c in checks] == ["FAIL", "ok", "ok"], checks
    assert "module 'no_such_module_q' does not import with" in checks[0]["detail"]
    assert "travels with the tasks" in checks[1]["detail"]
    assert "imports here" in checks[2]["detail"]
    assert r.err.count("\n") == 1, r.err  # one error line, no traceback
    ok = cli("doctor", "--site", "local", "--fn", "scipy.ndimage:uniform_filter")
    assert ok.code == 0, ok
