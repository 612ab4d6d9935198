"""The contained child that runs model-written Python (code-feedback evaluation): what a program may do (print,
math, fractions, SymPy, files in its own directory) and hostile programs that must be stopped."""
import os
import pathlib
import signal

import pytest

from verifier_pool.code_runner import run_python

ESCAPE = "g = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0].__init__.__globals__\n"


def test_a_program_prints_with_math_fractions_and_sympy_and_writes_its_own_files():
    result = run_python("import math, fractions, sympy\nx = sympy.Symbol('x')\n"
                        "print(math.gcd(12, 18), fractions.Fraction(3, 4) + 1, sympy.factor(x**2 - 1))\n"
                        "open('scratch.txt', 'w').write('kept'); print(open('scratch.txt').read())", timeout=20)
    assert (result.status, result.stdout) == ("ok", "6 7/4 (x - 1)*(x + 1)\nkept\n")


@pytest.mark.parametrize("program, status, says", [
    ("import os\nos.system('true')", "error", "import of 'os' is not allowed"),
    ("__import__('subprocess').run(['true'])", "error", "import of 'subprocess' is not allowed"),
    ("import socket", "error", "import of 'socket' is not allowed"),
    (ESCAPE + "g['system']('touch /tmp/rlvr-pwned-system')", "error", "os.system is not allowed"),
    (ESCAPE + "while True:\n    g['fork']()", "error", "os.fork is not allowed"),
    ("open('/tmp/rlvr-pwned-write', 'w').write('x')", "error", "outside the working directory"),
    ("open('../rlvr-pwned-parent', 'a').write('x')", "error", "outside the working directory"),
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
    result = run_python("import sympy\nprint(sympy.__name__)\nopen('left.txt', 'w').write('x')", timeout=20)
    assert result.status == "ok"
    assert not [p for p in pathlib.Path(os.environ.get("TMPDIR", "/tmp")).glob("rlvr-code-*")]
