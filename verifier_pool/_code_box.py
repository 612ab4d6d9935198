"""Inside the contained child of `verifier_pool.code_runner`: load what a program may use (SymPy only when the
program names it), drop root, confine the process with Landlock (kernel-enforced: from then on it may read and
execute files under the interpreter's own directories only, and create, write, rename or remove nothing anywhere,
nor open a TCP connection or signal a process outside itself), install the audit hook that refuses everything
else it can name, then run the program (argv[1], read before the confinement). Runs only there.

The audit hook is the second layer: its policy lives in a closure that no name the program can reach holds (no
module global, no live frame), and the calls that could find it (`gc.get_objects`, `sys._getframe`, …) are refused.
Where Landlock is missing the child refuses to run the program at all (exit status `NO_CONTAINMENT`)."""
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
    for name in [m for m in sys.modules if m.startswith(("ctypes", "_ctypes"))]:
        del sys.modules[name]


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
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

    def hook(event: str, args: tuple) -> None:
        if event == "import":
            name = args[0] or ""
            if name.split(".")[0] not in allowed and name not in loaded:
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

    return {**vars(builtins), "__import__": guarded_import}


def _drop_root(workdir: str) -> None:
    """Started as root: become `nobody` (root-owned files out of reach); then no new processes at all
    (`RLIMIT_NPROC` binds only without root)."""
    import resource

    if os.geteuid() == 0:
        os.chown(workdir, 65534, 65534)
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def _prepare() -> tuple:
    """Everything before the program: its source read and compiled, SymPy loaded if named, root dropped, Landlock
    applied, the hook installed; returns what `exec` needs, so no frame that ran the set-up stays alive."""
    with open(sys.argv[1], encoding="utf-8") as f:
        source = f.read()
    if "sympy" in source:  # loaded before the confinement, as a whole; a program that never names it starts faster
        import sympy  # noqa: F401
    program = compile(source, "program.py", "exec")
    allowed = ("math", "fractions", "sympy", "mpmath")  # a local: no module name the program reaches holds it
    namespace = {"__name__": "__main__", "__builtins__": _program_builtins(allowed)}
    import ctypes  # before dropping root: `nobody` may not read the interpreter's own directories

    _drop_root(os.path.realpath(os.getcwd()))
    _landlock(_readable(), ctypes)
    _install_hook(allowed)
    return program, namespace


if __name__ == "__main__":
    exec(*_prepare())  # noqa: S102 - the contained child: the one place model-written code runs
