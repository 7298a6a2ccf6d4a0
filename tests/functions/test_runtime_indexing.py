"""The app indexed by the real worker runtime (azure-functions-runtime), as Azure runs it on 3.13.

Through the same path the local host uses: worker init (which indexes), functions metadata and
function load requests to ``azure_functions_runtime.handle_event`` in a worker process.
"""

from __future__ import annotations

import os

import pytest

from devtools.host import HostError
from devtools.host.client import WorkerClient
from tests.conftest import BASE_ENV, REPO, get_functions_again

HOST_TESTS = REPO / "tests" / "host"


def test_every_function_of_the_app_loads_in_the_real_runtime() -> None:
    import function_app

    declared = {f.get_function_name() for f in get_functions_again(function_app.app)}
    worker = WorkerClient(REPO, {**os.environ, **BASE_ENV})
    try:
        worker.start()  # raises if the runtime refuses any function: then none loads
        assert set(worker.functions) == declared
        for meta in worker.functions.values():
            assert meta.function_id
            assert meta.raw_bindings
    finally:
        worker.stop()


def test_out_of_builtin_list_is_refused_and_then_no_function_loads() -> None:
    env = {**os.environ, "PYTHON_SCRIPT_FILE_NAME": "refused_app.py"}
    worker = WorkerClient(HOST_TESTS, env)
    with pytest.raises(HostError, match=r"binding out has invalid non-type annotation"):
        worker.start()
    assert worker.functions == {}  # not even the function that is fine
