"""The contained child that runs model-written Python (code-feedback): what a program may do (print, math,
fractions, SymPy) and hostile programs that must be stopped — by the audit hook, and by the kernel (Landlock) where
the hook is bypassed or absent."""
import os
import pathlib
import signal

import pytest

from verifier_pool.code_runner import run_python

ESCAPE = "g = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0].__init__.__globals__\n"


def test_a_program_prints_with_math_fractions_and_sympy_and_keeps_no_files():
    result = run_python("import math, fractions, sympy\nx = sympy.Symbol('x')\n"
                        "print(math.gcd(12, 18), fractions.Fraction(3, 4) + 1, sympy.factor(x**2 - 1))", timeout=20)
    assert (result.status, result.stdout) == ("ok", "6 7/4 (x - 1)*(x + 1)\n")
    scratch = run_python("open('scratch.txt', 'w').write('x')", timeout=10)
    assert scratch.status == "error" and "writing 'scratch.txt' is not allowed here" in scratch.stderr


@pytest.mark.parametrize("program, status, says", [
    ("import os\nos.system('true')", "error", "import of 'os' is not allowed"),
    ("__import__('subprocess').run(['true'])", "error", "import of 'subprocess' is not allowed"),
    ("import socket", "error", "import of 'socket' is not allowed"),
    (ESCAPE + "g['system']('touch /tmp/rlvr-pwned-system')", "error", "os.system is not allowed"),
    (ESCAPE + "while True:\n    g['fork']()", "error", "os.fork is not allowed"),
    ("open('/tmp/rlvr-pwned-write', 'w').write('x')", "error", "writing '/tmp/rlvr-pwned-write' is not allowed"),
    ("open('../rlvr-pwned-parent', 'a').write('x')", "error", "writing '../rlvr-pwned-parent' is not allowed"),
    ("x = 'a' * 10**10", "error", "MemoryError"),
    ("while True:\n    pass", "timeout", ""),
])
def test_hostile_programs_are_stopped(program, status, says):
    result = run_python(program, timeout=3)
    assert result.status == status and says in result.stderr, result
    if status == "timeout":  # the wall clock (3 s) ends it before its CPU limit (5 s): its group is SIGKILLed
        assert result.returncode == -signal.SIGKILL, result
    else:
        assert result.returncode == 1, result  # an exception, reported by the program itself
    assert not any(pathlib.Path("/tmp").glob("rlvr-pwned*"))


def test_the_environment_is_empty_and_a_flood_of_output_is_cut(monkeypatch):
    monkeypatch.setenv("RLVR_SECRET", "hunter2")
    leaked = run_python(ESCAPE + "print(dict(g['environ']))", timeout=10)
    assert leaked.status == "ok" and "hunter2" not in leaked.stdout and "RLVR_SECRET" not in leaked.stdout
    flood = run_python("print('x' * 10**8)", timeout=10, max_output=1000)
    assert flood.status == "ok" and len(flood.stdout) == 1000
    too_long = run_python("print(1)" * 10_000, max_code=1000)
    assert (too_long.status, too_long.stderr, too_long.returncode) == ("error", "program longer than 1000 characters", None)


def test_the_working_directory_is_gone_afterwards():
    result = run_python("import sympy\nprint(sympy.__name__)", timeout=20)
    assert result.status == "ok"
    assert not [p for p in pathlib.Path(os.environ.get("TMPDIR", "/tmp")).glob("rlvr-code-*")]


REACH = "import fractions\nsys = fractions.sys\nos = sys.modules['os']\n"


@pytest.mark.parametrize("program, says", [
    (REACH + "box = sys.modules['__main__']\nprint(sorted(k for k in vars(box) if k.isupper()))", "['NO_CONTAINMENT']"),
    (REACH + "os.mkdir('/tmp/rlvr-pwned-dir')", "os.mkdir is not allowed"),
    (REACH + "sys.modules['posix'].mkdir('/tmp/rlvr-pwned-dir')", "os.mkdir is not allowed"),
    (REACH + "os.open('/tmp/rlvr-pwned-fd', os.O_CREAT | os.O_WRONLY)", "writing '/tmp/rlvr-pwned-fd' is not allowed"),
    (REACH + "sys.modules['_io'].FileIO('/tmp/rlvr-pwned-io', 'w')", "writing '/tmp/rlvr-pwned-io' is not allowed"),
    (REACH + "print(open('/proc/%d/status' % os.getppid()).read())", "Permission denied: '/proc/"),
    (REACH + "print(os.listdir('/tmp'))", "Permission denied: '/tmp'"),
    ("import sympy\n" + REACH + "sys.modules['gc'].get_objects()", "gc.get_objects is not allowed"),  # gc loaded
    (REACH + "sys._getframe(0)", "sys._getframe is not allowed"),
    (REACH + "for i in range(10**6):\n    open('f%d' % i, 'w')", "writing 'f0' is not allowed"),
])
def test_escape_attempts_through_reachable_modules_fail(program, says):
    """The hook's policy is held by no reachable name (the box module keeps only its exit status), writes and new
    directories fail everywhere, the parent's /proc and other directories cannot be read, the hook cannot be found."""
    result = run_python(program, timeout=10)
    assert says in (result.stdout if result.status == "ok" else result.stderr), result
    assert not any(pathlib.Path("/tmp").glob("rlvr-pwned*"))


def test_landlock_alone_confines_a_process_that_has_no_audit_hook(tmp_path):
    """The kernel layer on its own (no audit hook, nothing refused in Python): creating, writing, listing /proc and
    reading outside the interpreter's directories all fail with the kernel's EACCES; reading the stdlib works."""
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[1]
    attempts = f"""
import ctypes, os, sys
sys.path.insert(0, {str(root)!r})
from verifier_pool import _code_box as box
box._landlock(box._readable(), ctypes)
import json  # the stdlib still reads
for name, attempt in [("mkdir", lambda: os.mkdir({str(tmp_path / 'd')!r})),
                      ("create", lambda: open({str(tmp_path / 'f')!r}, "w")),
                      ("proc", lambda: open("/proc/%d/status" % os.getppid()).read()),
                      ("listdir", lambda: os.listdir({str(tmp_path)!r}))]:
    try:
        attempt()
        print(name, "succeeded")
    except PermissionError:
        print(name, "refused")
"""
    out = subprocess.run([sys.executable, "-I", "-c", attempts], capture_output=True, text=True, timeout=60)
    assert out.stdout.split("\n")[:4] == ["mkdir refused", "create refused", "proc refused", "listdir refused"], out
    assert list(tmp_path.iterdir()) == []


def test_containment_is_available_here():
    from verifier_pool.code_runner import containment_available

    assert containment_available()
