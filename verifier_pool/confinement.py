"""The kernel's boundary around a model-written program: bubblewrap's namespaces and a libseccomp system-call filter.

Two kept tools build it, and the kernel holds it; nothing here runs inside the program's process:

- `bwrap_command`: bubblewrap (Debian `bubblewrap`) starts the box in fresh user, PID, IPC, mount, network, UTS and
  cgroup namespaces, with no capabilities, no further user namespaces (`--disable-userns`), a new session, and a
  root file system that holds only the interpreter's directories and `/usr`, read-only (no `/proc`, `/tmp`, `/etc`,
  `/home`, no project directory: the program arrives on stdin and keeps no files). It dies with its parent
  (`--die-with-parent`: bubblewrap sets the parent-death signal itself, so no uid change can clear it), and with
  the box's PID namespace everything the program started dies too.
- `seccomp_program`: a BPF program compiled by libseccomp (through `pyseccomp`, its ctypes bindings) that allows the
  system calls a Python program computing an answer makes and kills the process on any other. The box loads it
  (after Landlock, before the program) with `PR_SET_NO_NEW_PRIVS`; a filter cannot be removed. `REFUSED` names the
  calls the threat model singles out; they are refused because they are not allowed, and some are allowed only
  with arguments that keep them to the program itself (`prlimit64` on pid 0, `clone` for threads only).

Where either is missing (no `bwrap`, no user namespaces, no libseccomp) `confinement_problem()` says why and
code-feedback is refused at configuration.
"""
from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile

ALLOWED = (
    "read", "readv", "pread64", "write", "writev", "lseek", "close", "close_range",
    "fstat", "newfstatat", "statx", "stat", "lstat", "openat", "open", "getdents64", "getcwd", "readlink",
    "readlinkat", "access", "faccessat", "faccessat2", "fcntl", "dup", "dup2", "dup3",
    "mmap", "munmap", "mprotect", "mremap", "madvise", "brk",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
    "futex", "set_robust_list", "get_robust_list", "rseq", "set_tid_address", "arch_prctl",
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid", "getresgid",
    "getpgrp", "uname", "sysinfo", "getrusage", "times", "getpriority", "sched_getaffinity", "getrandom",
    "clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep", "sched_yield",
    "poll", "ppoll", "select", "pselect6", "exit", "exit_group", "setrlimit", "getrlimit",
)
REFUSED = (
    "prlimit64 (on another pid)", "setpriority", "sched_setaffinity", "ptrace", "process_vm_readv",
    "process_vm_writev", "unshare", "clone (with namespace flags, or a new process)", "clone3", "setns", "mount",
    "socket", "memfd_create", "execve", "execveat", "shmget", "msgget", "semget", "keyctl", "add_key",
    "io_uring_setup", "bpf", "perf_event_open", "kill", "fork", "vfork",
)
_CLONE_THREAD = 0x00010000
_CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
_TCGETS, _FIONCLEX, _FIOCLEX = 0x5401, 0x5450, 0x5451
_ENOSYS = 38


@functools.lru_cache(maxsize=1)
def seccomp_program() -> bytes:
    """The filter as raw BPF (`struct sock_filter[]`), compiled once per process by libseccomp for this machine's
    architecture; any other architecture's system calls (x86's 32-bit entry points) kill the process too."""
    import pyseccomp as seccomp

    rules = seccomp.SyscallFilter(seccomp.KILL_PROCESS)
    for name in ALLOWED:
        try:
            rules.add_rule(seccomp.ALLOW, name)
        except (RuntimeError, ValueError, OSError):  # a call this architecture does not have (`open` on aarch64)
            continue
    rules.add_rule(seccomp.ALLOW, "prlimit64", seccomp.Arg(0, seccomp.EQ, 0))
    rules.add_rule(seccomp.ALLOW, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, _CLONE_THREAD | _CLONE_NAMESPACES,
                                                       _CLONE_THREAD))
    rules.add_rule(seccomp.ERRNO(_ENOSYS), "clone3")  # its flags sit in memory a filter cannot read: glibc falls back
    for request in (_TCGETS, _FIONCLEX, _FIOCLEX):
        rules.add_rule(seccomp.ALLOW, "ioctl", seccomp.Arg(1, seccomp.EQ, request))
    with tempfile.TemporaryFile() as out:
        rules.export_bpf(out)
        out.seek(0)
        return out.read()


def module_path() -> list[str]:
    """The box's `sys.path`: the standard library and the directories that hold SymPy and mpmath (nothing else of
    this environment, and never the project's own source)."""
    import importlib.util

    bases = tuple(os.path.realpath(p) + os.sep for p in (sys.base_prefix, sys.base_exec_prefix))
    paths = [p for p in sys.path if p and (os.path.realpath(p) + os.sep).startswith(bases)]
    for package in ("sympy", "mpmath"):
        spec = importlib.util.find_spec(package)
        if spec and spec.origin:
            paths.append(os.path.dirname(os.path.dirname(spec.origin)))
    return [p for p in dict.fromkeys(os.path.realpath(p) for p in paths) if os.path.isdir(p)]


def mounted_directories() -> list[str]:
    """What the box sees, read-only: `/usr` (and `/lib` where it is not a link into it: the C libraries), the
    interpreter's own prefixes and `module_path()`."""
    system = ["/usr", *(f"/{d}" for d in ("lib", "lib64", "bin") if not os.path.islink(f"/{d}"))]
    roots = {*system, sys.prefix, sys.base_prefix, sys.exec_prefix, *module_path()}
    real = {os.path.realpath(p) for p in roots if os.path.isdir(p)}
    return sorted(p for p in real if not any(p != q and p.startswith(q + os.sep) for q in real))


def bwrap_command(box_script: str, python: str, readable: list[str], box_args: list[str]) -> list[str]:
    """The command that starts `box_script` (with `box_args`) under `python` inside fresh namespaces, the
    `readable` directories mounted read-only (see the module docstring)."""
    command = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
               "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL", "--clearenv", "--hostname", "box"]
    for path in readable:
        command += ["--ro-bind", path, path]
    for link in ("lib", "lib64", "bin"):
        if os.path.islink(f"/{link}"):
            command += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
    command += ["--ro-bind", box_script, "/box.py", "--chdir", "/", "--"]
    return command + [python, "-I", "-S", "-B", "/box.py", *box_args]


@functools.lru_cache(maxsize=1)
def confinement_problem() -> str | None:
    """None when this machine can build the box, else one line saying what is missing."""
    if not sys.platform.startswith("linux"):
        return "the box needs Linux (namespaces, seccomp, Landlock)"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (Debian: apt-get install bubblewrap)"
    try:
        seccomp_program()
    except Exception as exc:  # noqa: BLE001 - any failure to build the filter means no box
        return f"libseccomp is unavailable ({type(exc).__name__}: {exc})"[:200]
    return None
