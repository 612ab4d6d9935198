"""Run model-written Python, contained: for the code-feedback agent, whose model answers by writing a program.

This is the one place where text from a model runs as code, and it runs only in a child process built to hold
hostile code:

- a fresh interpreter (`python -I`) with an empty environment, in a new session, in a fresh temporary working
  directory that is deleted afterwards; started as root, it drops to `nobody` once SymPy is loaded;
- resource limits set before the program starts: address space (`RLIMIT_AS`), CPU seconds (`RLIMIT_CPU`), no new
  processes (`RLIMIT_NPROC` = 0 after dropping root: fork bombs fail at the first fork), file size
  (`RLIMIT_FSIZE`), open files; its own network namespace where the kernel lets us make one (no network);
- Landlock, applied by the kernel before the program runs and irreversible: the child may read and execute files
  under the interpreter's own directories only (no `/proc`, `/tmp`, `/home`, `/etc`), and create, write, rename or
  remove nothing anywhere (a program prints its answer; it keeps no files, so it cannot fill a disk either), nor
  open a TCP connection or signal a process outside itself. Where the kernel has no Landlock the child refuses to
  run the program (`containment_available()` says so; code-feedback training is refused there);
- a second layer inside, whose policy no name the program can reach holds: an audit hook (PEP 578: it cannot be
  removed from Python) that refuses imports other than `math`, `fractions` and `sympy` (and what SymPy needs),
  process creation, `os.system`, sockets, `ctypes`, opening files for writing, and the calls that could find the
  hook (`gc.get_objects`, `sys._getframe`, …);
- a wall-clock deadline after which the whole process group is killed; stdout and stderr are cut at
  `max_output` bytes.

`run_python` never raises for what the program does: it returns a `CodeResult` whose status is `ok`, `error`
(non-zero exit, e.g. a refused import), `timeout` (wall clock) or `killed` (a signal, e.g. the CPU limit).
"""
from __future__ import annotations

import functools
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

BOX = pathlib.Path(__file__).with_name("_code_box.py")


@dataclass(frozen=True)
class CodeResult:
    status: str  # ok | error | timeout | killed
    stdout: str
    stderr: str
    seconds: float
    returncode: int | None


def _limits(memory_bytes: int, cpu_seconds: int):
    """The child's `preexec_fn`: limits and no network where possible (the child drops root itself, once its
    interpreter and SymPy are loaded: see `_code_box`)."""
    def apply() -> None:
        import resource

        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the parent
            libc.unshare(0x40000000)  # CLONE_NEWNET: a network namespace with no interfaces (root only)
        except (OSError, AttributeError):
            pass
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def run_python(code: str, *, timeout: float = 10.0, memory_mb: int = 1024, max_output: int = 20_000,
               max_code: int = 20_000) -> CodeResult:
    """Run `code` (at most `max_code` characters) in the contained child; see the module docstring."""
    if len(code) > max_code:
        return CodeResult("error", "", f"program longer than {max_code} characters", 0.0, None)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rlvr-code-") as workdir:
        (pathlib.Path(workdir) / "program.py").write_text(code)
        os.chmod(workdir, 0o700)
        proc = subprocess.Popen(
            [sys.executable, "-I", str(BOX), "program.py"], cwd=workdir, env={}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            preexec_fn=_limits(memory_mb << 20, int(timeout) + 2))  # the wall clock usually ends it first
        readers = [_Drain(proc.stdout, max_output), _Drain(proc.stderr, max_output)]
        try:
            proc.wait(timeout=timeout)
            status = "ok" if proc.returncode == 0 else ("killed" if proc.returncode < 0 else "error")
        except subprocess.TimeoutExpired:
            status = "timeout"
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the program's process group, whatever it left running
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        out, err = (r.result() for r in readers)
    return CodeResult(status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
                      time.monotonic() - start, proc.returncode)


@functools.lru_cache(maxsize=1)
def containment_available() -> bool:
    """Whether this machine can run a program behind the kernel-enforced confinement (Landlock)."""
    result = run_python("print(1)", timeout=30)
    return result.status == "ok" and result.stdout == "1\n"


class _Drain:
    """Reads a pipe to its end in a thread, keeping the first `limit` bytes (a flood cannot fill our memory)."""

    def __init__(self, pipe, limit: int) -> None:
        import threading

        self.pipe, self.limit, self.kept = pipe, limit, bytearray()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while chunk := self.pipe.read1(1 << 16):
            if len(self.kept) < self.limit:
                self.kept += chunk[: self.limit - len(self.kept)]

    def result(self) -> bytes:
        self.thread.join(timeout=5)
        self.pipe.close()
        return bytes(self.kept)
