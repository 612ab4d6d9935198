"""Run model-written Python behind a boundary the kernel holds: for the code-feedback agent, whose model answers by
writing a program.

This is the one place where text from a model runs as code. Each program runs in its own box, used once:

- bubblewrap's fresh user, PID, IPC, mount, network, UTS and cgroup namespaces, no capabilities, no new user
  namespaces, a read-only root holding only the interpreter and `/usr` (`verifier_pool.confinement`). The program
  cannot see, signal or re-limit any process outside its box (other boxes included), has no network and no IPC
  objects that outlive it, and dies with whoever started it;
- inside, Landlock (read-only, nothing created, no TCP, no signals out), the seccomp filter compiled by libseccomp
  (any system call outside the allowed set kills the process: `socket`, `execve`, `memfd_create`, `unshare`,
  `ptrace`, `prlimit64` on another pid, SysV IPC, `keyctl`, `io_uring`, `bpf`, …), resource limits (CPU seconds,
  address space, no files, 64 descriptors), then the audit hook as defence in depth (`_code_box`);
- a wall-clock deadline after which the box is killed; stdout and stderr are cut at `max_output` bytes and stripped
  of terminal control sequences before they can reach a prompt.

Boxes are started ahead of need (`BoxPool`): a box pays its start-up (interpreter, SymPy for programs that name it,
Landlock, seccomp) while it waits, so a request costs only the program's own run. `run_python` never raises: for
any text it returns a `CodeResult` whose status is `ok`, `error` (non-zero exit, e.g. a refused import), `timeout`
(wall clock), `killed` (a signal: the CPU limit, or a system call the filter kills) or `refused` (no box here).
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import pathlib
import queue
import re
import subprocess
import sys
import threading
import time
import unicodedata
from dataclasses import dataclass

from verifier_pool._code_box import NO_CONTAINMENT
from verifier_pool.confinement import (
    bwrap_command, confinement_problem, module_path, mounted_directories, seccomp_program,
)

BOX = pathlib.Path(__file__).with_name("_code_box.py")
_TERMINAL_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]{0,4096}(?:\x07|\x1b\\)?|\x1b[@-_]?")


@dataclass(frozen=True)
class CodeResult:
    status: str  # ok | error | timeout | killed | refused
    stdout: str
    stderr: str
    seconds: float
    returncode: int | None


def printable(data: bytes, limit: int) -> str:
    """Program output as text a prompt may hold: decoded, terminal control sequences (colour, cursor moves, titles)
    and other control characters removed (newlines and tabs kept), at most `limit` characters."""
    text = _TERMINAL_SEQUENCE.sub("", data.decode("utf-8", "replace"))
    kept = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs"))
    return kept[:limit]


class BoxPool:
    """Confined boxes started ahead of need, `ready` per kind (`plain`, and `sympy` with SymPy loaded), each used
    for one program and replaced at once. A kind is kept ready from its first request on. Boxes are started by one
    long-lived thread: a box dies with the thread that started it (the parent-death signal follows threads)."""

    def __init__(self, ready: int = 2) -> None:
        self.ready = ready
        self._boxes: dict[str, queue.SimpleQueue] = {"plain": queue.SimpleQueue(), "sympy": queue.SimpleQueue()}
        self._wanted: queue.SimpleQueue = queue.SimpleQueue()
        self._started: set[str] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._keep_ready, name="code-box-starter", daemon=True)
        self._thread.start()

    def take(self, kind: str) -> subprocess.Popen:
        """A waiting box of `kind` (one started now if none waits); a replacement is started in the background."""
        with self._lock:
            if kind not in self._started:
                self._started.add(kind)
                for _ in range(self.ready):
                    self._wanted.put(kind)
        try:
            box = self._boxes[kind].get_nowait()
        except queue.Empty:
            box = start_box(kind)
        self._wanted.put(kind)
        return box

    def _keep_ready(self) -> None:
        while True:
            kind = self._wanted.get()
            try:
                self._boxes[kind].put(start_box(kind))
            except OSError:
                time.sleep(0.1)

    def close(self) -> None:
        """Kill the waiting boxes (they also die with this process)."""
        for boxes in self._boxes.values():
            while not boxes.empty():
                box = boxes.get_nowait()
                box.kill()
                box.wait()


@functools.lru_cache(maxsize=2)
def _box_command(kind: str) -> tuple[str, ...]:
    """The command that starts a box of `kind`, built once per process (its directories do not change)."""
    readable = mounted_directories()
    setup = json.dumps({"path": module_path(), "readable": readable, "sympy": kind == "sympy"})
    return tuple(bwrap_command(str(BOX), sys.executable, readable, [setup]))


def start_box(kind: str) -> subprocess.Popen:
    """Start one box of `kind`; it loads, confines itself and waits for its program on stdin."""
    box = subprocess.Popen(_box_command(kind), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env={}, start_new_session=True, close_fds=True)
    program = seccomp_program()
    box.stdin.write(len(program).to_bytes(4, "little") + program)
    box.stdin.flush()
    return box


_pool: BoxPool | None = None
_pool_lock = threading.Lock()


def pool() -> BoxPool:
    """This process's box pool, started on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = BoxPool()
            atexit.register(_pool.close)
        return _pool


def _forget_pool_in_child() -> None:
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool_in_child)


def run_python(code: str, *, timeout: float = 10.0, memory_mb: int = 1024, max_output: int = 20_000,
               max_code: int = 20_000) -> CodeResult:
    """Run `code` (at most `max_code` characters) in a fresh box; see the module docstring. Never raises."""
    if not isinstance(code, str) or len(code) > max_code:
        return CodeResult("error", "", f"program longer than {max_code} characters" if isinstance(code, str)
                          else "a program is text", 0.0, None)
    problem = confinement_problem()
    if problem:
        return CodeResult("refused", "", f"containment unavailable: {problem}", 0.0, None)
    source = code.encode("utf-8", "replace")
    request = f"{int(timeout) + 1} {memory_mb << 20}\n".encode() + source
    for _ in range(2):
        box = pool().take("sympy" if "sympy" in code else "plain")
        start = time.monotonic()
        try:
            box.stdin.write(request)
            box.stdin.close()
        except (BrokenPipeError, OSError):
            box.kill()
            box.wait()
            continue  # a waiting box that died (killed from outside): the next one gets the program
        return _finish(box, start, timeout, max_output)
    return CodeResult("error", "", "no box could take the program", 0.0, None)


def _finish(box: subprocess.Popen, start: float, timeout: float, max_output: int) -> CodeResult:
    """Wait for the box (killed at the deadline) and read what it printed."""
    readers = [_Drain(box.stdout, max_output), _Drain(box.stderr, max_output)]
    try:
        box.wait(timeout=timeout)
        code = box.returncode
        status = "ok" if code == 0 else "killed" if code < 0 or code > 128 else "error"
    except subprocess.TimeoutExpired:
        status = "timeout"
    box.kill()
    box.wait()
    out, err = (reader.result() for reader in readers)
    stderr = printable(err, max_output)
    if box.returncode == NO_CONTAINMENT and "containment unavailable" in stderr:
        status = "refused"
    elif status == "killed" and box.returncode in (-31, 128 + 31):
        stderr += "\nkilled: a system call outside the allowed set (seccomp)"
    return CodeResult(status, printable(out, max_output), stderr, time.monotonic() - start, box.returncode)


def containment_available() -> bool:
    """Whether this machine can run a program in the box (see `containment_problem`)."""
    return containment_problem() is None


@functools.lru_cache(maxsize=1)
def containment_problem() -> str | None:
    """None when a program runs in the box here, else one line saying why not: no bubblewrap, no user namespaces,
    no libseccomp, no Landlock."""
    problem = confinement_problem()
    if problem:
        return problem
    result = run_python("print(1)", timeout=30)
    if result.status == "ok" and result.stdout == "1\n":
        return None
    return (result.stderr.strip().splitlines() or [f"the box failed ({result.status})"])[-1][:200]


class _Drain:
    """Reads a pipe to its end in a thread, keeping the first `limit` bytes (a flood cannot fill our memory)."""

    def __init__(self, pipe, limit: int) -> None:
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
