"""Inside the box of `verifier_pool.code_runner`, started by bubblewrap (`verifier_pool.confinement`): load what a
program may use (SymPy in the boxes kept for programs that name it), confine this process with Landlock (from then on
it may read and execute files under the mounted directories only, and create, write, rename or remove nothing, nor
open a TCP connection or signal a process outside itself) and with the seccomp filter read from stdin (any other
system call kills it), install the audit hook that refuses what it can name, then read the program from stdin and
run it. Runs only there.

The box is started before its program is known, so all of this is paid before a request arrives. The audit hook is
defence in depth: its policy lives in a closure that no name the program can reach holds, and the calls that could
find it (`gc.get_objects`, `sys._getframe`, …) are refused; the kernel's layers hold without it. Where Landlock or
seccomp is missing the box refuses to run the program at all (exit status `NO_CONTAINMENT`)."""
import fractions  # noqa: F401 - loaded before the hook: the program may import it
import math  # noqa: F401
import os
import sys

NO_CONTAINMENT = 3


def _landlock(readable: list[str], ctypes) -> None:
    """Confine this process (and anything it could start) with Landlock; exit with `NO_CONTAINMENT` when the kernel
    has no Landlock. Handled: every file-system right of the kernel's ABI, TCP bind and connect (ABI ≥ 4), signals
    and abstract sockets outside the process (ABI ≥ 6); allowed: read, list and execute beneath `readable`."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    create, add_rule, restrict = 444, 445, 446  # the generic syscall table: x86_64 and aarch64 alike
    abi = libc.syscall(create, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        sys.stderr.write(f"containment unavailable: this kernel has no Landlock ({os.strerror(ctypes.get_errno())})\n")
        sys.exit(NO_CONTAINMENT)
    fs = (1 << 13) - 1 | (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    attr = RulesetAttr(fs, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
    ruleset = libc.syscall(create, ctypes.byref(attr), ctypes.c_size_t(8 if abi < 4 else 16 if abi < 6 else 24),
                           ctypes.c_uint32(0))
    if ruleset < 0:
        sys.stderr.write(f"containment unavailable: Landlock refused the ruleset ({os.strerror(ctypes.get_errno())})\n")
        sys.exit(NO_CONTAINMENT)
    read = 1 << 0 | 1 << 2 | 1 << 3  # execute, read a file, read a directory
    for path in readable:
        parent = os.open(path, os.O_PATH | os.O_CLOEXEC)
        libc.syscall(add_rule, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(PathBeneath(read, parent)),
                     ctypes.c_uint32(0))
        os.close(parent)
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.syscall(restrict, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
        sys.stderr.write(f"containment unavailable: Landlock did not apply ({os.strerror(ctypes.get_errno())})\n")
        sys.exit(NO_CONTAINMENT)
    os.close(ruleset)


def _readable() -> list[str]:
    """The interpreter's directories: what SymPy's lazy imports read. Nothing else (no /proc, /tmp, /home, /etc)."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *(p for p in sys.path if p)}
    return sorted(p for p in roots if os.path.isdir(p))


def _install_hook(allowed: tuple[str, ...]) -> None:
    """The audit hook, with its policy held only in this closure (the program can name neither)."""
    refused = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen",
               "socket.", "ctypes.", "os.kill", "os.killpg", "os.chdir", "os.chmod", "os.chown", "os.remove",
               "os.rename", "os.rmdir", "os.unlink", "os.mkdir", "os.utime", "os.truncate", "shutil.", "os.link",
               "os.symlink", "pty.", "winreg.", "urllib.", "http.", "ftplib.", "smtplib.", "telnetlib.",
               "webbrowser.", "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._getframe",
               "sys._current_frames", "sys.setprofile", "sys.settrace", "cpython.")
    loaded = frozenset(sys.modules)
    # What SymPy imports lazily on its own (`dataclasses` inside `integrate`): standard modules that compute, never
    # the ones that reach the system; the program's own `import` statements stay limited by `_program_builtins`.
    helpers = frozenset(sys.stdlib_module_names) - {
        "ctypes", "_ctypes", "subprocess", "_posixsubprocess", "socket", "_socket", "ssl", "_ssl", "select",
        "selectors", "asyncio", "multiprocessing", "_multiprocessing", "concurrent", "threading", "_thread", "pty",
        "tty", "termios", "fcntl", "mmap", "resource", "signal", "shutil", "tempfile", "os", "posix", "nt", "sys",
        "gc", "builtins", "importlib", "runpy", "code", "codeop", "pdb", "bdb", "pickle", "_pickle", "marshal",
        "shelve", "dbm", "sqlite3", "_sqlite3", "zipimport", "zipfile", "tarfile", "glob", "pathlib", "io", "_io",
        "webbrowser", "urllib", "http", "ftplib", "smtplib", "telnetlib", "xmlrpc", "socketserver", "ctypes.util",
        "_ctypes_test", "faulthandler", "tracemalloc", "sysconfig", "site", "venv", "ensurepip", "idlelib",
        "tkinter", "turtle", "curses", "readline", "syslog", "grp", "pwd", "spwd", "crypt", "_posixshmem"}
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

    def hook(event: str, args: tuple) -> None:
        if event == "import":
            name = args[0] or ""
            top = name.split(".")[0]
            if top not in allowed and top not in helpers and name not in loaded:
                raise ImportError(f"import of {name!r} is not allowed here (only math, fractions, sympy)")
        elif event.startswith(refused):
            raise PermissionError(f"{event} is not allowed here")
        elif event == "open" and len(args) >= 3 and (
                (isinstance(args[1], str) and any(c in args[1] for c in "wax+"))
                or (isinstance(args[2], int) and args[2] & write_flags)):
            raise PermissionError(f"writing {args[0]!r} is not allowed here")

    sys.addaudithook(hook)


def _program_builtins(allowed: tuple[str, ...]) -> dict:
    """Builtins whose `import` statement admits only the allowed modules (the audit hook covers modules not yet
    loaded; this covers the ones this process already holds, such as `os`)."""
    import builtins

    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.split(".")[0] not in allowed:
            raise ImportError(f"import of {name!r} is not allowed here (only math, fractions, sympy)")
        return real_import(name, globals, locals, fromlist, level)

    return {**vars(builtins), "__import__": guarded_import, "exit": sys.exit, "quit": sys.exit}


def _seccomp(program: bytes, ctypes) -> None:
    """Load the system-call filter that `verifier_pool.confinement` compiled with libseccomp (raw BPF); the kernel
    keeps it for the life of the process. `PR_SET_NO_NEW_PRIVS` is already set by `_landlock`."""
    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_char_p))
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        sys.stderr.write(f"containment unavailable: seccomp refused the filter ({os.strerror(ctypes.get_errno())})\n")
        sys.exit(NO_CONTAINMENT)


def _read_exactly(count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = os.read(0, count - len(data))
        if not chunk:
            sys.exit(NO_CONTAINMENT)
        data += chunk
    return data


def _read_program() -> tuple[str, int, int]:
    """The request on stdin after the filter: `cpu_seconds memory_bytes\n`, then the source until EOF."""
    chunks = []
    while chunk := os.read(0, 1 << 16):
        chunks.append(chunk)
    header, _, source = b"".join(chunks).partition(b"\n")
    cpu_seconds, memory_bytes = (int(x) for x in header.split())
    return source.decode("utf-8", "replace"), cpu_seconds, memory_bytes


def _limit(cpu_seconds: int, memory_bytes: int, resource) -> None:
    """The program's own limits: CPU seconds past what the set-up used, address space, no files, no core dumps."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(usage.ru_utime + usage.ru_stime) + 1 + cpu_seconds
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _prepare() -> tuple:
    """Everything before the program, in the box bubblewrap started: the set-up (argv[1], JSON: the module path,
    the readable directories, whether to load SymPy) applied, the filter read from stdin, Landlock and seccomp
    applied, the hook installed, then the program read from stdin and compiled; returns what `exec` needs, so no
    frame that ran the set-up stays alive."""
    import ctypes
    import json
    import resource

    setup = json.loads(sys.argv[1])
    sys.path[:] = setup["path"]
    if setup["sympy"]:
        import sympy  # noqa: F401 - loaded before the confinement, as a whole
    bpf = _read_exactly(int.from_bytes(_read_exactly(4), "little"))
    allowed = ("math", "fractions", "sympy", "mpmath")  # a local: no module name the program reaches holds it
    _landlock(setup["readable"], ctypes)
    _seccomp(bpf, ctypes)
    for name in [m for m in sys.modules if m.startswith(("ctypes", "_ctypes"))]:
        del sys.modules[name]
    _install_hook(allowed)
    source, cpu_seconds, memory_bytes = _read_program()
    _limit(cpu_seconds, memory_bytes, resource)
    program = compile(source, "program.py", "exec")
    namespace = {"__name__": "__main__", "__builtins__": _program_builtins(allowed)}
    return program, namespace


def _run(program, namespace: dict) -> None:
    """Run the program and leave at once (no interpreter shutdown to pay for): its exit status, 1 after an
    exception (reported as Python would), or what `sys.exit` asked for."""
    code = 0
    try:
        exec(program, namespace)  # noqa: S102 - the box: the one place model-written code runs
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if stop.code is not None and not isinstance(stop.code, int):
            print(stop.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - whatever the program raised is its error, reported like Python's
        sys.excepthook(*sys.exc_info())
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code & 0xFF)


if __name__ == "__main__":
    _run(*_prepare())
