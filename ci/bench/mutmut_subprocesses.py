"""Let mutmut see the code that tests run in child processes.

Many tests run the appliance's code as a process of its own (`python -m host ... phase
preflight` inside a network namespace), with an environment of their own. mutmut 3 knows
neither: the child does not get `MUTANT_UNDER_TEST`, so it always runs the original code,
and the functions it calls while mutmut maps tests to functions are recorded in the
child's memory and lost, so mutmut thinks no test reaches them.

ci/bench/mutation.sh loads this module twice, in mutmut's own venv only:
- as a pytest plugin (`-p mutmut_subprocesses`): every child process started with an
  environment of its own also gets the active mutant and the file where it reports the
  functions it called; after each test those are added to what mutmut recorded; a
  mutant's tests run fastest first; and each mutant's tests get a network namespace of
  their own, so that mutants run side by side (and beside other test runs) never meet on a
  port: preflight's tests hold port 10250 and check that it is taken;
- at every interpreter's start, through a .pth file: a child reports its calls at exit.
"""

import atexit
import ctypes
import os
import subprocess
import tempfile

import pytest

FORWARDED = ("MUTANT_UNDER_TEST", "ALGA_MUTMUT_CALLS")
CLONE_NEWNET = 0x40000000  # <sched.h>; os.unshare arrives only in Python 3.12


def child_reports_calls() -> None:
    """In a child process of a test: append the functions it called to the shared file."""
    path = os.environ.get("ALGA_MUTMUT_CALLS")
    if path and os.environ.get("MUTANT_UNDER_TEST") == "stats":
        atexit.register(_append_calls, path)


def _append_calls(path: str) -> None:
    from mutmut.state import state

    with open(path, "a", encoding="utf-8") as calls:
        calls.writelines(f"{name}\n" for name in state()._stats)


def _forwarding(original_init):
    def init(self, *args, **kwargs):
        env = kwargs.get("env")
        if env is not None:
            kwargs["env"] = {**{k: os.environ[k] for k in FORWARDED if k in os.environ}, **env}
        original_init(self, *args, **kwargs)

    return init


def _own_network_namespace() -> None:
    """This process (mutmut forks one per mutant) in a new network namespace with only its
    loopback, up. The tests' namespaces (`ip netns add`) are wired to this one."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET): run the benchmark as root")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def pytest_configure(config):
    _own_network_namespace()
    descriptor, path = tempfile.mkstemp(prefix="mutmut-calls-")
    os.close(descriptor)
    os.environ["ALGA_MUTMUT_CALLS"] = path
    subprocess.Popen.__init__ = _forwarding(subprocess.Popen.__init__)


def pytest_collection_modifyitems(items):
    """A mutant's tests fastest first, by the durations mutmut measured: with -x a mutant is
    then killed by the cheapest test that notices it (mutmut passes them in no order)."""
    from mutmut.state import state

    durations = state().duration_by_test
    items.sort(key=lambda item: durations.get(item.nodeid, float("inf")))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """Before mutmut files this test's calls: add those its child processes reported."""
    from mutmut.state import state

    path = os.environ["ALGA_MUTMUT_CALLS"]
    with open(path, "r+", encoding="utf-8") as calls:
        state()._stats.update(line.strip() for line in calls if line.strip())
        calls.truncate(0)
