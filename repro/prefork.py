"""Start experiment processes from one that has already imported torch.

Every run is its own process (isolation, a clean memory high-water mark, a process tree a
timeout can end), and each one used to pay for ``import torch`` and, once its optimizer
first steps, ``torch._dynamo``: about 6 s of CPU before any work, for every one of the ~45
runs of ``run --all --preset smoke``. A *prefork server* (``python -m repro.prefork``,
started once per batch) imports those libraries once and forks a child per run, the way a
zygote does. Each child becomes exactly what ``python -m repro.worker SPEC`` would be: its
own session, the run folder as working directory, the runner's environment, stdin from
/dev/null and stdout/stderr into the run's logs.

Protocol, one JSON object per line. The runner writes ``{"argv", "cwd", "env", "stdout",
"stderr"}`` on the server's stdin; the server answers ``{"pid": N}`` (or ``{"error": ...}``)
and later ``{"exit": N, "rc": code}`` when the child ends (``rc`` as ``Popen.returncode``:
minus the signal number when a signal ended it). End of stdin ends the server; its children
then see their parent gone and end themselves (the worker's watchdog), so a killed paperkb
leaves nothing running, as before.

Only single-process CPU runs of paperkb's own experiments are forked: a CUDA context does not
survive fork, torchrun starts its own processes, and another package's experiment may never import
torch. ``PAPERKB_PREFORK=0`` turns the server off, ``PAPERKB_PREFORK=1`` forks every CPU run.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from repro.processes import pid_alive

PREFORK_ENV = "PAPERKB_PREFORK"
# the imports most runs pay for: torch, the optimizer's torch._dynamo, the plots, and
# transformers for the parity checks (third-party only: paperkb's own code is imported fresh)
PRELOAD = ("torch", "torch._dynamo", "matplotlib.pyplot", "transformers")
READY_TIMEOUT_S = 120.0


# --------------------------------------------------------------------------------------
# the server side
# --------------------------------------------------------------------------------------
PRELOAD_ENV = "PAPERKB_PREFORK_PRELOAD"  # comma-separated modules instead of PRELOAD (paperkb's tests)


def _preload() -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    names = os.environ.get(PRELOAD_ENV)
    for name in PRELOAD if names is None else [n.strip() for n in names.split(",") if n.strip()]:
        try:
            __import__(name)
        except Exception:
            pass


def _become_worker(request: dict[str, Any]) -> None:
    """In the forked child: turn into ``python -m repro.worker SPEC``; never returns."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["stdout"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        for fd, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
        os.closerange(3, 65536)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)
        os.chdir(request["cwd"])
        env = dict(request["env"])
        os.environ.clear()
        os.environ.update(env)
        for entry in reversed([p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        threads = env.get("OMP_NUM_THREADS", "")
        torch = sys.modules.get("torch")
        if torch is not None and threads.isdigit() and int(threads) > 0:
            # the OpenMP runtime read its thread count when the server imported torch
            torch.set_num_threads(int(threads))
        sys.argv = list(request["argv"])
        from repro import worker

        code = worker.main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _send(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        _send({"exit": pid, "rc": rc})


def serve() -> int:
    _preload()
    _send({"ready": os.getpid()})
    buffer = b""
    stdin = sys.stdin.buffer
    fd = stdin.fileno()
    while True:
        readable, _, _ = select.select([fd], [], [], 0.2)
        _reap()
        if not readable:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:  # the runner is gone or done
            return 0
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            try:
                request = json.loads(line)
                pid = os.fork()
            except (ValueError, OSError) as exc:
                _send({"error": str(exc)})
                continue
            if pid == 0:
                _become_worker(request)
            _send({"pid": pid})


# --------------------------------------------------------------------------------------
# the runner side
# --------------------------------------------------------------------------------------
class PreforkedProcess:
    """What the runner needs of ``subprocess.Popen`` for a child the server forked."""

    def __init__(self, pid: int, server: PreforkServer, args: list[str]) -> None:
        self.pid = pid
        self.args = args
        self.returncode: int | None = None
        self._server = server

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server.exit_code(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(0.05)
        assert self.returncode is not None
        return self.returncode


class PreforkServer:
    """One ``python -m repro.prefork`` per batch of runs; ``spawn`` forks a worker from it."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self._proc = proc
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._exits: dict[int, int] = {}
        self._answers: list[dict[str, Any]] = []
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="paperkb-prefork", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, env: dict[str, str], cwd: Path) -> PreforkServer | None:
        """The server, ready to fork, or None when it could not start (runs then start as
        plain processes)."""
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "repro.prefork"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        except OSError:
            return None
        server = cls(proc)
        if server._answer(READY_TIMEOUT_S) is None:
            server.close()
            return None
        return server

    def _read(self) -> None:
        stream: IO[bytes] = self._proc.stdout  # type: ignore[assignment]
        for raw in stream:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            with self._cond:
                if "exit" in msg:
                    self._exits[int(msg["exit"])] = int(msg["rc"])
                else:
                    self._answers.append(msg)
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _answer(self, timeout: float) -> dict[str, Any] | None:
        end = time.monotonic() + timeout
        with self._cond:
            while not self._answers and not self._closed:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._answers.pop(0) if self._answers else None

    def spawn(self, argv: list[str], cwd: Path, env: dict[str, str], stdout: Path, stderr: Path) -> PreforkedProcess:
        """Fork ``argv`` (a ``python -m repro.worker SPEC`` command) from the server."""
        if argv[1:3] != ["-m", "repro.worker"]:
            raise OSError(f"only repro.worker runs are forked, not {argv!r}")
        request = {"argv": argv[2:], "cwd": str(cwd), "env": env, "stdout": str(stdout), "stderr": str(stderr)}
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write((json.dumps(request) + "\n").encode("utf-8"))
            self._proc.stdin.flush()
        except (OSError, ValueError) as exc:
            raise OSError(f"the prefork server is gone: {exc}") from exc
        answer = self._answer(30.0)
        if not answer or "pid" not in answer:
            raise OSError("the prefork server could not fork: " + str((answer or {}).get("error", "no answer")))
        return PreforkedProcess(int(answer["pid"]), self, argv)

    def exit_code(self, pid: int) -> int | None:
        with self._lock:
            if pid in self._exits:
                return self._exits[pid]
            closed = self._closed
        if closed and not pid_alive(pid):
            return -signal.SIGKILL  # the server died before it could say; the run did not finish
        return None

    def close(self) -> None:
        """End the server (its running children, if any, then end themselves)."""
        try:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def mode() -> str:
    """``off`` (``PAPERKB_PREFORK=0``), ``always`` (``=1``: any experiment, paperkb's tests use
    it) or ``auto`` (unset: paperkb's own experiments, which all import torch; an experiment
    from another package may never import it, and would only pay for the server's imports)."""
    value = os.environ.get(PREFORK_ENV, "").strip().lower()
    if value in ("0", "false", "no", "off"):
        return "off"
    if value in ("1", "true", "yes", "on", "always"):
        return "always"
    return "auto"


if __name__ == "__main__":
    sys.exit(serve())
