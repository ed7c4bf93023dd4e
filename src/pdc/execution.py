"""Run generated Python against a problem's tests in a sandboxed subprocess; pass@k.

    from pdc.execution import run_tests, pass_at_k, SandboxConfig
    result = run_tests("def add(a, b):\\n    return a + b", "assert add(1, 2) == 3")
    result.status        # 'passed' ('failed', 'timeout', 'error')
    pass_at_k(n=5, c=2, k=1)   # 0.4

Each run is one fresh interpreter (`python -I`: no user site, no PYTHON*
variables) started in a new session, in its own temporary directory (the
working directory and HOME), with stdin closed and a minimal environment.
The program is a guard preamble, then the candidate code, then the tests.
Layers, from the operating system up:

  * resource limits (setrlimit, in the child before exec): address space
    (RLIMIT_AS, memory), CPU seconds (RLIMIT_CPU), processes (RLIMIT_NPROC),
    size of any file written (RLIMIT_FSIZE, stdout and stderr included),
    open files (RLIMIT_NOFILE), no core dumps;
  * a wall-clock limit: at the deadline, and after every run, the whole
    process group is killed with SIGKILL;
  * when pdc runs as root: the child drops to user and group `nobody`
    (65534) before exec, so RLIMIT_NPROC is enforced (the kernel does not
    enforce it for root) and files of other users cannot be changed; the
    interpreter must then be readable by `nobody` (see `interpreter()`);
  * a network namespace of its own (unshare(CLONE_NEWNET), with a user
    namespace when not root) when the kernel allows it: only a down loopback
    device, no route anywhere;
  * a Python audit hook (PEP 578), installed before the candidate code,
    refusing: sockets (connect, bind, DNS lookups), starting processes
    (fork, exec, spawn, system, subprocess), signals to other processes,
    ctypes, and any file creation, write, removal, rename, chmod/chown or
    link outside the temporary directory.

What it does not protect against: the audit hook is a guard against
accidents and naive hostile code, not a security boundary (code that
corrupts the interpreter's memory can get past it); without root and without
user namespaces the OS layers that remain are the resource limits and the
process group, so files the calling user may change are protected only by
the audit hook; a process that calls setsid() escapes the process-group kill
(the hook refuses fork, so one cannot be made from Python); reading files the
sandbox user can read is allowed (imports need it); CPU and memory are
limited per run, not across parallel runs. Run untrusted code in a
container or VM as well.
"""

from __future__ import annotations

import ctypes
import os
import resource
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from math import comb
from typing import Any

NOBODY = 65534
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
OUTPUT_KEPT = 2000  # characters of stdout and stderr kept in a result


@dataclass
class SandboxConfig:
    timeout: float = 10.0          # wall-clock seconds per run
    memory_mb: int = 1024          # RLIMIT_AS, MiB
    max_processes: int = 64        # RLIMIT_NPROC (per user, enforced for non-root users only)
    max_file_mb: int = 16          # RLIMIT_FSIZE, MiB: the largest file (or output) a run may write
    max_open_files: int = 64       # RLIMIT_NOFILE
    python: str = ""               # interpreter; "" = interpreter()
    audit_hook: bool = True        # False only to test the OS layers on their own


@dataclass
class RunResult:
    status: str                    # passed, failed (an exception or non-zero exit), timeout, error
    returncode: int | None
    seconds: float
    stdout: str
    stderr: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al. (2021)'s unbiased estimator: 1 - C(n-c, k) / C(n, k), n samples, c correct."""
    if not 0 <= c <= n or not 1 <= k:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n} c={c} k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def _world_runnable(path: str) -> bool:
    """Whether user `nobody` can run `path`: every directory on the way o+x, the file o+rx."""
    real = os.path.realpath(path)
    parts = real.split(os.sep)
    for i in range(2, len(parts)):
        if not os.stat(os.sep.join(parts[:i]) or os.sep).st_mode & stat.S_IXOTH:
            return False
    mode = os.stat(real).st_mode
    return bool(mode & stat.S_IXOTH and mode & stat.S_IROTH)


@lru_cache(maxsize=None)
def interpreter() -> tuple[str, bool]:
    """(python to run, whether to drop to `nobody`): this interpreter, or when root and
    it is not runnable by `nobody`, the system python3; root is kept only if neither is."""
    if os.geteuid() != 0:
        return sys.executable, False
    for candidate in (sys.executable, shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")):
        if candidate and _world_runnable(candidate):
            return candidate, True
    return sys.executable, False


@lru_cache(maxsize=None)
def isolation() -> dict[str, Any]:
    """What the sandbox can do on this machine (reported in eval's summary)."""
    python, drop = interpreter()
    probe = run_program("import socket\ntry:\n    socket.if_nameindex\nexcept Exception:\n    pass\n"
                        "print(sorted(n for _, n in socket.if_nameindex()))", SandboxConfig(timeout=20))
    own_net = probe.status == "passed" and probe.stdout.strip() == "['lo']"
    return {"python": python, "user": "nobody" if drop else ("root" if os.geteuid() == 0 else "caller"),
            "network_namespace": own_net, "audit_hook": True, "rlimits": True, "process_group_kill": True}


try:  # looked up here, not in the child: dlopen between fork and exec can deadlock
    _UNSHARE = ctypes.CDLL(None, use_errno=True).unshare
except (OSError, AttributeError):
    _UNSHARE = None


def _libc_unshare(flags: int) -> bool:
    return _UNSHARE is not None and _UNSHARE(flags) == 0


def _child_setup(cfg: SandboxConfig, drop: bool):
    """Runs in the child between fork and exec: namespaces, limits, then the user."""
    root = os.geteuid() == 0

    def setup() -> None:
        if root:
            _libc_unshare(CLONE_NEWNET)
        else:
            _libc_unshare(CLONE_NEWUSER | CLONE_NEWNET)  # may be refused: the audit hook remains
        mem = cfg.memory_mb * 1024 * 1024
        cpu = int(cfg.timeout) + 1
        fsize = cfg.max_file_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_NOFILE, (cfg.max_open_files, cfg.max_open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (cfg.max_processes, cfg.max_processes))
        if drop:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    return setup


# Installed before the candidate code. Paths are checked after resolving links.
GUARD = r'''
import os as _os, sys as _sys
_ROOT = _os.path.realpath(_os.getcwd())
_BLOCKED = ("socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
            "socket.gethostbyaddr", "socket.sendto", "socket.sendmsg", "os.fork", "os.forkpty",
            "os.exec", "os.spawn", "os.posix_spawn", "os.system", "os.kill", "os.killpg",
            "subprocess.Popen", "pty.spawn", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata",
            "os.setuid", "os.chroot")
_PATHS = {"os.remove": 1, "os.rmdir": 1, "os.rename": 2, "os.replace": 2, "shutil.rmtree": 1,
          "os.truncate": 1, "os.chmod": 1, "os.chown": 1, "os.link": 2, "os.symlink": 2,
          "os.mkdir": 1, "os.utime": 1, "os.chflags": 1, "os.lchown": 1, "os.removexattr": 1,
          "os.setxattr": 1, "shutil.copyfile": 2, "shutil.move": 2}
def _inside(path):
    if isinstance(path, int):
        return True
    if isinstance(path, bytes):
        path = _os.fsdecode(path)
    path = _os.path.realpath(_os.path.join(_ROOT, _os.fspath(path)))
    return path == _ROOT or path.startswith(_ROOT + _os.sep)
def _guard(event, args):
    if event in _BLOCKED:
        raise PermissionError("pdc sandbox: " + event + " is not allowed")
    if event == "open":
        path, mode, flags = args
        writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (
            mode is None and flags & (_os.O_WRONLY | _os.O_RDWR | _os.O_CREAT | _os.O_TRUNC))
        if writing and not _inside(path):
            raise PermissionError("pdc sandbox: writing outside the working directory")
    elif event in _PATHS:
        for path in args[:_PATHS[event]]:
            if path is not None and not _inside(path):
                raise PermissionError("pdc sandbox: " + event + " outside the working directory")
_sys.addaudithook(_guard)
del _guard
'''


def run_program(source: str, cfg: SandboxConfig | None = None) -> RunResult:
    """Run a Python program in the sandbox; 'passed' when it runs to its end and exits 0.

    The end is a line printing a random token after `source`, so code that calls
    exit(0) before its tests have run does not pass.
    """
    cfg = cfg or SandboxConfig()
    python, drop = (cfg.python, False) if cfg.python else interpreter()
    token = "pdc-end-" + secrets.token_hex(8)
    work = tempfile.mkdtemp(prefix="pdc-exec-")
    outdir = tempfile.mkdtemp(prefix="pdc-exec-out-")  # outside the child's reach when it is nobody
    try:
        if drop:
            os.chown(work, NOBODY, NOBODY)
        os.chmod(work, 0o700)
        program = os.path.join(outdir, "program.py")
        with open(program, "w", encoding="utf-8") as f:
            f.write((GUARD if cfg.audit_hook else "") + "\n" + source + f"\n\nprint({token!r})\n")
        os.chmod(outdir, 0o711)
        os.chmod(program, 0o644)
        env = {"PATH": "/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
        started = time.monotonic()
        with open(os.path.join(outdir, "stdout"), "wb") as out, open(os.path.join(outdir, "stderr"), "wb") as err:
            proc = subprocess.Popen([python, "-I", "-X", "utf8", program], cwd=work, env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True, preexec_fn=_child_setup(cfg, drop),
                                    close_fds=True)
            try:
                code = proc.wait(timeout=cfg.timeout)
                status = "passed" if code == 0 else "failed"
            except subprocess.TimeoutExpired:
                code, status = None, "timeout"
            finally:
                _kill_group(proc.pid, 0)  # the leader first, so that wait() reaps it
                proc.wait()
                _kill_group(proc.pid, 0.5)  # then whatever it left in its group
        seconds = time.monotonic() - started
        if code is not None and code < 0 and -code in (signal.SIGXCPU, signal.SIGKILL):
            status = "timeout"  # CPU limit or killed at the deadline
        stdout = _tail(os.path.join(outdir, "stdout"))
        if status == "passed" and token not in stdout:
            status = "failed"  # exited 0 before the end of the tests
        return RunResult(status, code, round(seconds, 3), stdout.replace(token, "").rstrip("\n"),
                         _tail(os.path.join(outdir, "stderr")))
    except OSError as e:
        return RunResult("error", None, 0.0, "", f"pdc could not start the sandbox: {e}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(outdir, ignore_errors=True)


def run_tests(code: str, tests: str, cfg: SandboxConfig | None = None) -> RunResult:
    """Candidate code followed by the problem's tests (asserts, or HumanEval's check())."""
    return run_program(code + "\n\n" + tests, cfg)


def _kill_group(pgid: int, wait: float) -> None:
    """SIGKILL the run's process group, repeated for up to `wait` seconds until it is gone
    (orphans re-parented to an init that does not reap them stay as harmless zombies)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        if time.monotonic() >= deadline:
            return
        time.sleep(0.01)


def _tail(path: str) -> str:
    """The last OUTPUT_KEPT characters of a captured stream."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(max(0, size - 4 * OUTPUT_KEPT))
        return f.read().decode("utf-8", errors="replace")[-OUTPUT_KEPT:]
