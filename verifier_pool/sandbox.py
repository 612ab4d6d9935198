"""Hard deadlines for SymPy: calls run in a child process that is SIGKILLed when it overruns.

Signals only interrupt the main thread and a SymPy call stuck in C code ignores them, so the only
deadline that works inside a Ray actor or a worker thread is a separate process. Parent and child
speak msgpack over pipes: request `[op, args, cpu_seconds]`, reply `[ok, result]`.

The child is a sandbox, not just a timer: it starts with an empty environment (no API keys, no
credentials), in its own session, with `RLIMIT_AS` (memory) and a per-request `RLIMIT_CPU`, and dies
with its parent (`PR_SET_PDEATHSIG`). It runs only the handlers below; untrusted text is parsed, never
executed.
"""
from __future__ import annotations

import math
import os
import queue
import select
import subprocess
import sys
import time
from typing import Any

import msgpack

IN_SANDBOX = False
STARTUP_TIMEOUT = 120.0
STARTUP_RETRIES = 2  # children that die before they see the call (killed from outside), replaced for free
MEMORY_LIMIT_BYTES = 2 * 1024**3


class SandboxDied(RuntimeError):
    """The child process exited (crashed or was killed) before answering; `starting` when it died before it was
    given the call (so the input cannot have caused it)."""

    def __init__(self, message: str, starting: bool = False) -> None:
        super().__init__(message)
        self.starting = starting


class SandboxTimeout(TimeoutError):
    """The call overran its deadline; the child was killed."""


class SandboxProcess:
    """One child Python process serving verifier calls over msgpack pipes."""

    def __init__(self) -> None:
        self.restarts = 0
        self._spawn()

    def _spawn(self) -> None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {"PYTHONPATH": root, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8"}
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
             "from verifier_pool.sandbox import _serve; _serve()", root],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, bufsize=0,
            start_new_session=True, cwd="/",
        )
        self._unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self._ready = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_message(self, deadline: float) -> Any:
        fd = self.proc.stdout.fileno()
        while True:
            for message in self._unpacker:
                return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxTimeout()
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                raise SandboxTimeout()
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise SandboxDied(f"sandbox process exited with {self.proc.poll()}")
            self._unpacker.feed(chunk)

    def call(self, op: str, args: Any, timeout: float) -> Any:
        """Run `op(*args)` in the child; raises SandboxTimeout (child replaced) or SandboxDied (child replaced)."""
        try:
            if not self._ready:
                self._read_message(time.monotonic() + STARTUP_TIMEOUT)
                self._ready = True
            self.proc.stdin.write(msgpack.packb([op, args, math.ceil(timeout) + 1], use_bin_type=True))
            ok, result = self._read_message(time.monotonic() + timeout)
        except SandboxTimeout:
            self.restart()
            raise
        except (SandboxDied, BrokenPipeError, OSError, ValueError) as exc:
            starting = not self._ready
            self.restart()
            raise SandboxDied(str(exc), starting=starting) from exc
        if not ok:
            raise RuntimeError(result)
        return result

    def restart(self) -> None:
        self.kill()
        self.restarts += 1
        self._spawn()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            pipe.close()


_idle: queue.LifoQueue[SandboxProcess] = queue.LifoQueue()
_boxes: list[SandboxProcess] = []


def total_restarts() -> int:
    """Children replaced in this process so far (timeouts and crashes)."""
    return sum(box.restarts for box in _boxes)


def run(op: str, args: tuple, *, timeout: float) -> Any:
    """Run a verifier op in an idle sandbox (one per concurrent caller) with a hard deadline.
    A child that dies while serving the call is replaced and the call retried once; one that dies while starting
    (before it saw the input: killed from outside, out of memory) is replaced up to `STARTUP_RETRIES` times
    without counting against the call. Raises SandboxTimeout, SandboxDied or RuntimeError."""
    try:
        box = _idle.get_nowait()
    except queue.Empty:
        box = SandboxProcess()
        _boxes.append(box)
    serving_deaths = starting_deaths = 0
    try:
        while True:
            try:
                return box.call(op, list(args), timeout)
            except SandboxDied as died:
                starting_deaths += died.starting
                serving_deaths += not died.starting
                if serving_deaths > 1 or starting_deaths > STARTUP_RETRIES:
                    raise
    finally:
        _idle.put(box)


def _confine() -> None:
    """Limits the child sets on itself: memory, die with the parent."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _limit_cpu(seconds: int) -> None:
    """A CPU budget for the next request: the soft RLIMIT_CPU set `seconds` past the CPU used so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = math.ceil(usage.ru_utime + usage.ru_stime)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = used + max(1, int(seconds))
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _serve() -> None:
    """Child side: answer requests from stdin until it closes."""
    global IN_SANDBOX
    IN_SANDBOX = True
    _confine()
    import sympy  # noqa: F401 - import cost paid before "ready"
    from latex2sympy2_extended import latex2sympy  # noqa: F401

    from verifier_pool import equivalence, tools

    handlers = {
        "compare": lambda *args: equivalence.compare_inline(*args).to_dict(),
        "tool": tools.run_tool,
        "ping": lambda: "pong",
        "environ": lambda: dict(os.environ),
        "crash": lambda: os._exit(3),
        "sleep": lambda seconds: time.sleep(seconds),
    }
    out = sys.stdout.buffer
    out.write(msgpack.packb("ready"))
    out.flush()
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    fd = sys.stdin.fileno()
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return
        unpacker.feed(chunk)
        for op, args, cpu_seconds in unpacker:
            try:
                _limit_cpu(cpu_seconds)
                reply = [True, handlers[op](*args)]
            except Exception as exc:  # noqa: BLE001 - reported to the parent, never fatal
                reply = [False, f"{type(exc).__name__}: {exc}"[:500]]
            out.write(msgpack.packb(reply, use_bin_type=True))
            out.flush()


if __name__ == "__main__":
    _serve()
