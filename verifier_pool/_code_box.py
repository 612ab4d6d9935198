"""Inside the contained child of `verifier_pool.code_runner`: load what a program may use (SymPy only when the
program names it: a program that reaches it by a computed name finds its imports refused), install the audit
hook that refuses everything else, then run the program (argv[1], in the working directory). Runs only there."""
import fractions  # noqa: F401 - loaded before the hook: the program may import it
import math  # noqa: F401
import os
import sys

ALLOWED_IMPORTS = ("math", "fractions", "sympy", "mpmath")
REFUSED_EVENTS = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen",
                  "socket.", "ctypes.", "os.kill", "os.killpg", "os.chdir", "os.chmod", "os.chown", "os.remove",
                  "os.rename", "os.rmdir", "os.unlink", "shutil.", "os.link", "os.symlink", "pty.", "winreg.",
                  "urllib.", "http.", "ftplib.", "smtplib.", "telnetlib.", "webbrowser.")
WORKDIR = os.path.realpath(os.getcwd())
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def _writes(mode, flags) -> bool:
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        return True
    return isinstance(flags, int) and bool(flags & WRITE_FLAGS)


def _hook(event: str, args: tuple) -> None:
    if event == "import":
        name = args[0] or ""
        if name.split(".")[0] not in ALLOWED_IMPORTS and name not in sys.modules:
            raise ImportError(f"import of {name!r} is not allowed here (only math, fractions, sympy)")
    elif event.startswith(REFUSED_EVENTS):
        raise PermissionError(f"{event} is not allowed here")
    elif event == "open" and len(args) >= 3 and _writes(args[1], args[2]):
        path = args[0]
        target = os.path.realpath(os.path.join(WORKDIR, path)) if isinstance(path, (str, bytes)) else None
        if not isinstance(target, str) or not (target == WORKDIR or target.startswith(WORKDIR + os.sep)):
            raise PermissionError(f"writing {path!r} outside the working directory is not allowed here")


def _program_builtins() -> dict:
    """Builtins whose `import` statement admits only the allowed modules (the audit hook covers modules not yet
    loaded; this covers the ones this process already holds, such as `os`)."""
    import builtins

    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.split(".")[0] not in ALLOWED_IMPORTS:
            raise ImportError(f"import of {name!r} is not allowed here (only math, fractions, sympy)")
        return real_import(name, globals, locals, fromlist, level)

    return {**vars(builtins), "__import__": guarded_import}


def _drop_root() -> None:
    """Started as root: hand the working directory to `nobody` and become it (root-owned files out of reach);
    then no new processes at all (`RLIMIT_NPROC` binds only without root)."""
    import resource

    if os.geteuid() == 0:
        os.chown(WORKDIR, 65534, 65534)
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def main() -> None:
    source = open(sys.argv[1], encoding="utf-8").read()
    if "sympy" in source:  # loaded before the hook, as a whole; a program that never names it starts faster
        import sympy  # noqa: F401
    program = compile(source, "program.py", "exec")
    namespace = {"__name__": "__main__", "__builtins__": _program_builtins()}
    _drop_root()
    sys.addaudithook(_hook)
    exec(program, namespace)  # noqa: S102 - the contained child: the one place model-written code runs


main()
