"""A user's module is imported on a worker before any work is handed out."""

from __future__ import annotations

import pytest
from distributed import Client, LocalCluster

from hpcscale.backends import worker
from hpcscale.errors import RunError


def test_a_module_that_does_not_import_on_the_workers_is_one_line() -> None:
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        worker.check_imports(client, ["json", "", "scipy.ndimage"], "--fn")
        with pytest.raises(RunError) as info:
            worker.check_imports(client, ["json", "no_such_module_xyz"], "--fn")
    msg = str(info.value)
    assert msg.startswith("--fn: module 'no_such_module_xyz' does not import on the workers")
    assert "ModuleNotFoundError: No module named 'no_such_module_xyz'" in msg
    assert "(python " in msg
    assert msg.endswith("nothing was computed")
    assert "\n" not in msg
