"""The box that runs model-written Python (code-feedback): what a program may do (print, math, fractions, SymPy),
and an escape corpus — each attempt checked by its side effect (a file, a process, an IPC object, a limit), not only
by a refused call. The kernel's layers are also tried alone, with the audit hook absent and ctypes in hand, as a
program that had switched the hook off would be."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from verifier_pool import code_runner
from verifier_pool.code_runner import printable, run_python
from verifier_pool.confinement import ALLOWED, REFUSED, bwrap_command, mounted_directories, seccomp_program

ROOT = pathlib.Path(__file__).resolve().parents[1]
ESCAPE = "g = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0].__init__.__globals__\n"
REACH = "import fractions\nsys = fractions.sys\nos = sys.modules['os']\n"
SIGSYS_EXIT = 128 + signal.SIGSYS  # bubblewrap reports a box killed by a signal as 128 + its number


@pytest.fixture
def victim():
    """A process outside any box, as a sibling program or the runner's parent would be."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def limits_of(pid: int) -> str:
    return pathlib.Path(f"/proc/{pid}/limits").read_text()


def test_a_program_prints_with_math_fractions_and_sympy_and_keeps_no_files():
    result = run_python("import math, fractions, sympy\nx = sympy.Symbol('x')\n"
                        "print(math.gcd(12, 18), fractions.Fraction(3, 4) + 1, sympy.factor(x**2 - 1))", timeout=20)
    assert (result.status, result.stdout) == ("ok", "6 7/4 (x - 1)*(x + 1)\n")
    lazy = run_python("import sympy\nx = sympy.Symbol('x')\nprint(sympy.integrate(x * sympy.exp(x), x))", timeout=30)
    assert (lazy.status, lazy.stdout) == ("ok", "(x - 1)*exp(x)\n"), lazy  # SymPy's own lazy stdlib imports load
    assert "import of 'dataclasses' is not allowed" in run_python("import dataclasses", timeout=10).stderr
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
    if status == "timeout":  # the wall clock (3 s) ends it before its CPU limit (4 s): the box is SIGKILLed
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


@pytest.mark.parametrize("program", ["print('\\ud800')\n# \ud800", "print(1)\x00", "\udcff" * 50, "x" * 2_000_000,
                                     b"print(1)", None])
def test_any_text_gets_a_result_never_an_exception(program):
    result = run_python(program, timeout=10)
    assert result.status in ("ok", "error") and isinstance(result.stderr, str), result


def test_output_reaching_a_prompt_is_stripped_of_terminal_control_and_bounded():
    result = run_python("print('\\x1b[2J\\x1b[31mred\\x1b[0m \\x1b]0;title\\x07 ok\\x07\\x08\\r' + 'y' * 100)",
                        timeout=10, max_output=40)
    assert result.stdout.startswith("red  okyyy") and len(result.stdout) <= 40 and "\x1b" not in result.stdout
    assert printable("a\x1b[1;2Hb\tc\x00\n\x9b".encode(), 100) == "ab\tc\n"


@pytest.mark.parametrize("program, says", [
    (REACH + "box = sys.modules['__main__']\nprint(sorted(k for k in vars(box) if k.isupper()))", "['NO_CONTAINMENT']"),
    (REACH + "os.mkdir('/tmp/rlvr-pwned-dir')", "os.mkdir is not allowed"),
    (REACH + "sys.modules['posix'].mkdir('/tmp/rlvr-pwned-dir')", "os.mkdir is not allowed"),
    (REACH + "os.open('/tmp/rlvr-pwned-fd', os.O_CREAT | os.O_WRONLY)", "writing '/tmp/rlvr-pwned-fd' is not allowed"),
    (REACH + "sys.modules['_io'].FileIO('/tmp/rlvr-pwned-io', 'w')", "writing '/tmp/rlvr-pwned-io' is not allowed"),
    (REACH + "print(open('/proc/%d/status' % os.getppid()).read())", "No such file or directory: '/proc/"),
    (REACH + "print(open('/etc/passwd').read())", "No such file or directory: '/etc/passwd'"),
    (REACH + f"print(open({str(ROOT / 'pyproject.toml')!r}).read())", "No such file or directory"),
    (REACH + "print(os.listdir('/tmp'))", ": '/tmp'"),  # absent, or (a checkout under /tmp) an unreadable mount parent
    ("import sympy\n" + REACH + "sys.modules['gc'].get_objects()", "gc.get_objects is not allowed"),  # gc loaded
    (REACH + "sys._getframe(0)", "sys._getframe is not allowed"),
    (REACH + "for i in range(10**6):\n    open('f%d' % i, 'w')", "writing 'f0' is not allowed"),
])
def test_escape_attempts_through_reachable_modules_fail(program, says):
    """The hook's policy is held by no reachable name (the box module keeps only its exit status), writes and new
    directories fail everywhere, the host's /proc, /etc, /tmp and the project are not in the box at all."""
    result = run_python(program, timeout=10)
    assert says in (result.stdout if result.status == "ok" else result.stderr), result
    assert not any(pathlib.Path("/tmp").glob("rlvr-pwned*"))


@pytest.mark.parametrize("attack", [
    "sys.modules['resource'].prlimit({pid}, sys.modules['resource'].RLIMIT_NOFILE, (3, 3))",
    "os.setpriority(os.PRIO_PROCESS, {pid}, 19)",
    "os.sched_setaffinity({pid}, {{0}})",
    "os.kill({pid}, 9)",
    "[os.kill(p, 9) for p in range(1, 200) if p != os.getpid()]",
])
def test_other_processes_are_out_of_reach(victim, attack):
    """With no trick at all, a program cannot re-limit, re-prioritise, pin or signal a process outside its box."""
    before = (limits_of(victim.pid), os.getpriority(os.PRIO_PROCESS, victim.pid), os.sched_getaffinity(victim.pid))
    result = run_python(REACH + attack.format(pid=victim.pid), timeout=10)
    assert result.status in ("error", "killed"), result
    after = (limits_of(victim.pid), os.getpriority(os.PRIO_PROCESS, victim.pid), os.sched_getaffinity(victim.pid))
    assert after == before and victim.poll() is None


def test_a_program_cannot_touch_a_sibling_box():
    """Two programs at once: the second signals and re-limits every pid it can name; the first finishes untouched."""
    import threading

    results = {}
    sibling = threading.Thread(target=lambda: results.update(a=run_python(
        "import math\nfor i in range(3 * 10**6):\n    math.sqrt(i)\nprint('done')", timeout=30)))
    sibling.start()
    time.sleep(0.3)
    run_python(REACH + "r = sys.modules['resource']\nfor p in range(1, 4000):\n    try:\n        r.prlimit(p, "
               "r.RLIMIT_CPU, (0, 0))\n    except OSError:\n        pass", timeout=10)
    sibling.join()
    assert (results["a"].status, results["a"].stdout) == ("ok", "done\n"), results


# ---------------------------------------------------------------- the kernel's layers alone (no audit hook)

KERNEL_ONLY = """
import json, sys
setup = json.loads(sys.argv[1])
sys.path[:] = setup["path"]
import ctypes, os
from verifier_pool import _code_box as box
bpf = box._read_exactly(int.from_bytes(box._read_exactly(4), "little"))
box._landlock(setup["readable"], ctypes)
box._seccomp(bpf, ctypes)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
print("confined", flush=True)
exec(sys.stdin.read())
print("after", flush=True)
"""


def kernel_only(attack: str, tmp_path) -> subprocess.CompletedProcess:
    """Run `attack` in the box with Landlock and seccomp but no audit hook, holding ctypes and a libc handle."""
    script = tmp_path / "kernel_only.py"
    script.write_text(KERNEL_ONLY)
    readable = mounted_directories() + [str(ROOT)]
    setup = json.dumps({"path": [str(ROOT)] + [p for p in sys.path if p and os.path.isdir(p)], "readable": readable})
    program = seccomp_program()
    return subprocess.run(bwrap_command(str(script), sys.executable, readable, [setup]), capture_output=True,
                          input=len(program).to_bytes(4, "little") + program + attack.encode(), timeout=60)


def sysv_objects() -> list[str]:
    return [pathlib.Path(f"/proc/sysvipc/{kind}").read_text() for kind in ("shm", "msg", "sem")]


X86_64 = {"shmget": 29, "msgget": 68, "semget": 64, "socket": 41, "unshare": 272, "setns": 308, "mount": 165,
          "memfd_create": 319, "ptrace": 101, "process_vm_readv": 310, "keyctl": 250, "add_key": 248, "bpf": 321,
          "perf_event_open": 298, "io_uring_setup": 425, "fork": 57, "execve": 59, "prlimit64": 302,
          "setpriority": 141, "sched_setaffinity": 203, "kill": 62, "unlink": 87, "mkdir": 83}


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="system call numbers of x86_64")
@pytest.mark.parametrize("attack", [
    "libc.syscall(N['shmget'], 0, 1 << 20, 0o1600)",
    "libc.syscall(N['msgget'], 0, 0o1600)",
    "libc.syscall(N['semget'], 0, 1, 0o1600)",
    "libc.syscall(N['socket'], 1, 1, 0)",
    "libc.syscall(N['unshare'], 0x10000000)",
    "libc.syscall(N['setns'], 0, 0)",
    "libc.syscall(N['mount'], b'none', b'/usr', b'tmpfs', 0, None)",
    "libc.syscall(N['memfd_create'], b'x', 0)",
    "libc.syscall(N['ptrace'], 16, VICTIM, 0, 0)",
    "libc.syscall(N['process_vm_readv'], VICTIM, 0, 0, 0, 0, 0)",
    "libc.syscall(N['keyctl'], 0, 0)",
    "libc.syscall(N['add_key'], b'user', b'k', b'v', 1, -3)",
    "libc.syscall(N['bpf'], 0, 0, 0)",
    "libc.syscall(N['perf_event_open'], 0, 0, -1, -1, 0)",
    "libc.syscall(N['io_uring_setup'], 1, 0)",
    "libc.syscall(N['fork'])",
    "libc.syscall(N['execve'], b'/usr/bin/true', None, None)",
    "import resource; libc.prlimit(VICTIM, 7, None, None)",
    "libc.syscall(N['prlimit64'], VICTIM, 7, None, None)",
    "libc.syscall(N['setpriority'], 0, VICTIM, 19)",
    "libc.syscall(N['sched_setaffinity'], VICTIM, 8, (ctypes.c_ulong * 1)(1))",
    "libc.syscall(N['kill'], -1, 9)",
    "libc.syscall(N['mkdir'], b'/usr/rlvr-pwned', 0o777)",
])
def test_the_kernel_kills_each_refused_system_call_without_the_hook(attack, victim, tmp_path):
    """The filter kills the process at the call (exit 128 + SIGSYS, nothing after it runs), and the side effect is
    absent: no SysV object, the victim alive with its limits, priority and CPU mask unchanged, no file made."""
    before = (sysv_objects(), limits_of(victim.pid), os.getpriority(os.PRIO_PROCESS, victim.pid),
              os.sched_getaffinity(victim.pid))
    out = kernel_only(f"N = {X86_64!r}\nVICTIM = {victim.pid}\n{attack}\n", tmp_path)
    assert out.stdout == b"confined\n" and out.returncode == SIGSYS_EXIT, out
    after = (sysv_objects(), limits_of(victim.pid), os.getpriority(os.PRIO_PROCESS, victim.pid),
             os.sched_getaffinity(victim.pid))
    assert after == before and victim.poll() is None
    assert not pathlib.Path("/usr/rlvr-pwned").exists()


def test_without_the_hook_files_stay_unwritten_and_unseen(tmp_path):
    """Landlock and the mount namespace alone: creating is refused, the host's /tmp and /proc are absent."""
    attack = ("import errno\nfor path in ('/usr/rlvr-pwned', '/tmp/x', '/proc/1/status'):\n    try:\n"
              "        open(path, 'w')\n    except OSError as exc:\n        print(errno.errorcode[exc.errno])\n")
    out = kernel_only(attack, tmp_path)
    said = out.stdout.decode().split()
    assert said[0] == "confined" and said[-1] == "after" and said[1] in ("EACCES", "EROFS"), out
    assert said[2] in ("ENOENT", "EACCES") and said[3] == "ENOENT", out  # /tmp exists only as a mount's parent
    assert not pathlib.Path("/usr/rlvr-pwned").exists()


def test_the_filter_allows_what_a_program_needs_and_refuses_the_named_calls():
    names = {entry.split(" ")[0] for entry in REFUSED}
    assert not names & set(ALLOWED)
    assert len(seccomp_program()) % 8 == 0


# ---------------------------------------------------------------- lifetime


def descendants(pid: int) -> set[int]:
    parents = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_nothing_outlives_a_killed_runner():
    """The runner (e.g. a Ray actor) is SIGKILLed while its program spins and other boxes wait: every box dies."""
    runner = subprocess.Popen([sys.executable, "-c", "import sys, threading, time; sys.path.insert(0, sys.argv[1])\n"
                               "from verifier_pool.code_runner import run_python\n"
                               "threading.Thread(target=run_python, args=('while True: pass',), kwargs={'timeout': 60})"
                               ".start()\ntime.sleep(60)", str(ROOT)])
    deadline = time.monotonic() + 30
    while len(descendants(runner.pid)) < 6 and time.monotonic() < deadline:  # bwrap, its init, python: two boxes
        time.sleep(0.2)
    boxes = descendants(runner.pid)
    assert len(boxes) >= 6, boxes
    runner.kill()
    runner.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in boxes) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in boxes if alive(pid)]


def test_a_timed_out_box_leaves_no_process():
    before = descendants(os.getpid())
    result = run_python("while True:\n    pass", timeout=1)
    assert result.status == "timeout"
    time.sleep(0.5)
    waiting = descendants(os.getpid()) - before
    assert len(waiting) <= 3 * 2 * code_runner.pool().ready  # only the boxes waiting for the next programs


def test_containment_is_available_here():
    from verifier_pool.code_runner import containment_available

    assert containment_available()


def test_code_feedback_is_refused_in_one_line_where_the_kernel_cannot_confine(monkeypatch):
    from cluster.config import ConfigError, load_config, validate

    monkeypatch.setattr(code_runner, "containment_problem", lambda: "bubblewrap is not installed")
    with pytest.raises(ConfigError) as refused:
        validate(load_config("tiny", overrides=["rollout.env=code-feedback", "model.name=tiny-prose"]))
    assert "\n" not in str(refused.value) and "bubblewrap is not installed" in str(refused.value)
