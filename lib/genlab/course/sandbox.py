"""Run one notebook in a confined worker process and report every executed cell as it finishes.

:func:`run_confined` starts this file as a worker (``python sandbox.py --worker FD`` -- run by path, so the worker
does not import genlab and, through it, torch: only the kernel needs them), sends it the notebook on stdin and reads
JSON lines on a private pipe (an fd the kernel does not inherit, so nothing the notebook prints can pose as one):

* ``sandbox``: the confinement obtained (network, filesystem, processes, memory, user);
* ``cell``, once per executed cell: cell id, the kernel's execute-reply status, whether it timed out, its error
  outputs, the payloads it displayed under the MIME types asked for, and the kernel's peak memory so far;
* ``done``: how the run ended (``ok`` | ``crashed`` (the kernel died) | ``stuck`` (a cell ignored the interrupt
  after its timeout) | ``error`` (e.g. the kernel did not start)).

The worker confines itself before it starts the kernel, which inherits all of it:

* ``RLIMIT_AS`` (the memory cap; per process, mapped libraries included), ``RLIMIT_FSIZE``, no core files; and for
  the address space to mean memory, ``MALLOC_ARENA_MAX=2``, torch/OpenMP threads limited, CUDA hidden (CUDA reserves
  far more address space than any cap);
* where Linux allows it (root, or unprivileged user namespaces): a network namespace with only loopback up (kernel
  <-> client traffic stays on 127.0.0.1); a mount namespace in which every file system is read-only except the job's
  own folder; a PID namespace with its own /proc, whose init is the worker (the kernel cannot see or signal
  anything outside, and dies with the worker). A root worker drops CAP_SYS_ADMIN and friends from its bounding set
  before it starts the kernel, so the kernel cannot undo the read-only view;
* papermill runs the notebook through nbclient with ``allow_errors`` (a failing cell does not stop the run), a
  per-cell timeout that interrupts the kernel and goes on (the run ends as ``stuck`` if the kernel ignores the
  interrupt), and an immediate kernel shutdown; the parent kills every process of the run at the wall-clock limit.

Not covered: /dev, /dev/shm and /proc/sys stay as they are; without namespaces (not Linux, or a non-root grader on
a system without unprivileged user namespaces) only the resource limits apply and a process that detaches itself
may outlive the run. Library code that writes caches must honour ``$XDG_CACHE_HOME`` (pointed into the job folder).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

if __package__:  # imported as genlab.course.sandbox (the grader)
    from genlab.course.proctree import descendants
else:  # run by file path as the worker: stay clear of the genlab package (it imports torch)
    from proctree import descendants  # type: ignore[no-redef]


@dataclass
class Limits:
    """What one run may use. ``timeout``: wall clock for the whole run; ``cell_timeout``: per cell."""

    timeout: float
    cell_timeout: float
    memory_mb: int = 4096
    max_file_mb: int = 512
    threads: int = 1
    isolate: bool = True
    profile: str = "ci"


@dataclass
class ConfinedRun:
    """What came back from one run."""

    events: list[dict] = field(default_factory=list)
    killed: bool = False  # stopped at the wall-clock limit
    returncode: int | None = None
    seconds: float = 0.0
    log_tail: str = ""  # last lines the worker wrote to its stderr (for a crash message)

    @property
    def sandbox(self) -> dict:
        ev = next((e for e in self.events if e.get("event") == "sandbox"), {})
        return {k: v for k, v in ev.items() if k != "event"}

    @property
    def cells(self) -> dict[str, dict]:
        return {e.get("id"): e for e in self.events if e.get("event") == "cell"}

    @property
    def done(self) -> dict | None:
        return next((e for e in self.events if e.get("event") == "done"), None)


def run_confined(notebook: str, *, filename: str, data: bytes, limits: Limits, scratch: str | Path,
                 parameters: dict | None = None, collect: tuple[str, ...] = (),
                 executed_to: str | Path | None = None) -> ConfinedRun:
    """Execute ``notebook`` (nbformat JSON) in a confined worker; return its events.

    filename/data: a copy of the original file put in the kernel's working directory (the original is never
    touched). scratch: folder for the job's temporary folder (removed afterwards). parameters: injected by papermill.
    collect: MIME types whose display payloads are reported per cell. executed_to: where to copy the executed
    notebook, if the run produced one.
    """
    jobdir = Path(tempfile.mkdtemp(prefix="job-", dir=scratch))
    home, work = jobdir / "home", jobdir / "work"
    for d in (home, home / "runtime", home / "tmp", home / ".matplotlib", work, jobdir / "out"):
        d.mkdir(parents=True, exist_ok=True)
    (work / Path(filename).name).write_bytes(data)
    _seed_matplotlib_cache(home / ".matplotlib")
    payload = {
        "notebook": notebook, "parameters": parameters or {}, "workdir": str(work), "jobdir": str(jobdir),
        "output": str(jobdir / "out" / "executed.ipynb"), "collect": list(collect),
        "cell_timeout": limits.cell_timeout, "start_timeout": min(60.0, limits.timeout),
        "memory_mb": limits.memory_mb, "max_file_mb": limits.max_file_mb, "isolate": limits.isolate,
        "parent_pid": os.getpid(),
    }
    run = ConfinedRun()
    r, w = os.pipe()
    t0 = time.monotonic()
    deadline = t0 + limits.timeout
    log_path = jobdir.with_suffix(".log")  # outside the job folder: the notebook cannot delete it
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", str(w)],
                                stdin=subprocess.PIPE, stdout=log, stderr=log, pass_fds=(w,), cwd="/",
                                env=_worker_env(home, limits), start_new_session=True)
    os.close(w)
    try:
        threading.Thread(target=_feed, args=(proc, json.dumps(payload).encode()), daemon=True).start()
        run.killed = not _read_events(r, deadline, run.events)
    finally:
        os.close(r)
        if run.killed:
            _kill_tree(proc.pid)
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()) + 10)
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            proc.wait()
    run.returncode, run.seconds = proc.returncode, round(time.monotonic() - t0, 2)
    executed = jobdir / "out" / "executed.ipynb"
    if executed_to is not None and executed.is_file():
        Path(executed_to).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(executed, executed_to)
    lines = log_path.read_bytes()[-4000:].decode("utf-8", "replace").strip().splitlines()
    run.log_tail = " / ".join([ln for ln in lines if ln.strip() and "Traceback" not in ln][-3:])
    shutil.rmtree(jobdir, ignore_errors=True)
    log_path.unlink()
    return run


def _worker_env(home: Path, limits: Limits) -> dict[str, str]:
    """A small environment for the worker and kernel: no secrets of the grader's, caches and config in the job."""
    keep = ("PATH", "LANG", "TZ", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "LD_LIBRARY_PATH")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith(("LC_", "GENLAB_"))}
    threads = str(limits.threads)
    env.update({
        "GENLAB_PROFILE": limits.profile, "HOME": str(home), "IPYTHONDIR": str(home / ".ipython"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
        "JUPYTER_PLATFORM_DIRS": "1", "MPLCONFIGDIR": str(home / ".matplotlib"), "MPLBACKEND": "Agg",
        "XDG_CACHE_HOME": str(home / ".cache"), "TMPDIR": str(home / "tmp"), "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "GENLAB_THREADS": threads,
        "MALLOC_ARENA_MAX": "2", "PYTHONDONTWRITEBYTECODE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    })
    return env


def _seed_matplotlib_cache(target: Path) -> None:
    """Copy matplotlib's font list into the job's fresh config folder (rebuilding it costs seconds per run)."""
    home = os.path.expanduser("~")
    for c in (os.environ.get("MPLCONFIGDIR"), os.path.join(home, ".cache", "matplotlib"),
              os.path.join(home, ".matplotlib")):
        if c and os.path.isdir(c):
            for f in Path(c).glob("fontlist-*.json"):
                shutil.copyfile(f, target / f.name)
            return


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except OSError:  # the worker died before reading: its exit code tells the rest
        pass


def _read_events(fd: int, deadline: float, events: list[dict]) -> bool:
    """Collect JSON lines from the worker until it closes the pipe (True) or the deadline passes (False)."""
    import selectors

    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not sel.select(timeout=min(left, 1.0)):
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return True
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if isinstance(ev, dict):
                    events.append(ev)
            if len(buf) > 64 << 20:  # no event is that long
                buf = b""


def _kill_tree(pid: int) -> None:
    """SIGKILL a worker, the kernel and everything they started (each in its own process group)."""
    for _ in range(2):  # a second pass catches what was forked while the first one ran
        for p in [pid, *descendants(pid)]:
            for kill in (lambda q: os.killpg(os.getpgid(q), signal.SIGKILL), lambda q: os.kill(q, signal.SIGKILL)):
                try:
                    kill(p)
                except (ProcessLookupError, PermissionError):
                    pass


# ----------------------------------------------------------------------------------------------------------------
# The worker process


class _KernelStuck(Exception):
    """A cell ran over its time limit and the kernel ignored the interrupt."""


def _enter_sandbox(payload: dict) -> dict:
    """Confine this process (the kernel inherits it all). Returns what was obtained, for the gradebook.

    Runs first thing in the worker: a user namespace can only be entered by a single-threaded process.
    """
    import resource

    info: dict[str, Any] = {"pid": os.getpid()}
    libc = None
    if sys.platform.startswith("linux"):
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of the kernel stay ours to kill
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the grader
        if os.getppid() != payload.get("parent_pid"):
            os._exit(1)
    if not payload.get("isolate"):
        info.update(network="not isolated (disabled)", filesystem="not protected (disabled)",
                    processes="shared (disabled)")
    elif libc is None:
        why = f"needs Linux namespaces (this is {sys.platform})"
        info.update(network=f"not isolated: {why}", filesystem=f"not protected: {why}", processes=f"shared: {why}")
    else:
        info.update(_isolate(libc, payload["jobdir"]))
    info["memory"] = f"RLIMIT_AS {payload['memory_mb']} MB per process"
    for name, mb in (("RLIMIT_AS", payload["memory_mb"]), ("RLIMIT_FSIZE", payload["max_file_mb"]), ("RLIMIT_CORE", 0)):
        try:
            resource.setrlimit(getattr(resource, name), (int(mb) * 2**20,) * 2)
        except (ValueError, OSError) as e:  # e.g. macOS does not enforce RLIMIT_AS
            info["memory" if name == "RLIMIT_AS" else name] = f"{name} not set: {e}"
    try:
        import pwd

        info["user"] = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        info["user"] = str(os.geteuid())
    return info


_CLONE_NEWUSER, _CLONE_NEWNET, _CLONE_NEWNS, _CLONE_NEWPID = 0x10000000, 0x40000000, 0x00020000, 0x20000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT = 1, 2, 4, 8, 32
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 16384, 1 << 18
#: per-mount flags that a read-only remount must repeat (a user namespace may not clear them)
_MS_KEEP = {"nosuid": _MS_NOSUID, "nodev": _MS_NODEV, "noexec": _MS_NOEXEC, "noatime": 1024, "nodiratime": 2048,
            "relatime": 1 << 21}
#: capabilities a root kernel must not have: sys_admin (mount: undo the read-only view), sys_ptrace, sys_module,
#: sys_rawio, sys_boot, mknod
_DROP_CAPS = (21, 19, 16, 17, 22, 27)


def _isolate(libc: Any, writable: str) -> dict:
    """Network, mount and PID namespaces for this process and its children; each entry says what was obtained."""
    import ctypes

    def err() -> str:
        return os.strerror(ctypes.get_errno())

    via = ""
    if libc.unshare(_CLONE_NEWNET) != 0:
        first = err()
        uid, gid = os.getuid(), os.getgid()
        if os.geteuid() == 0 or libc.unshare(_CLONE_NEWUSER) != 0:
            why = f"unshare failed ({first}) and no user namespace is available ({err()})"
            return {"network": f"not isolated: {why}", "filesystem": f"not protected: {why}",
                    "processes": f"shared: {why}"}
        try:  # keep our own ids inside the user namespace (files keep their owners)
            Path("/proc/self/setgroups").write_text("deny")
            Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
            Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
        except OSError as e:
            return {"network": f"not isolated: cannot map ids in a user namespace ({e})",
                    "filesystem": "not protected", "processes": "shared"}
        via = " (user namespace)"
        if libc.unshare(_CLONE_NEWNET) != 0:
            return {"network": f"not isolated: {err()}", "filesystem": "not protected", "processes": "shared"}
    out = {"network": f"isolated{via}: loopback only"}
    try:  # the kernel talks to its client over 127.0.0.1: bring loopback up (SIOCGIFFLAGS / SIOCSIFFLAGS, IFF_UP)
        import fcntl
        import socket
        import struct

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            flags = struct.unpack("16sh22x", fcntl.ioctl(s, 0x8913, struct.pack("16sh22x", b"lo", 0)))[1]
            fcntl.ioctl(s, 0x8914, struct.pack("16sh22x", b"lo", flags | 0x1))
    except OSError as e:
        out["network"] += f", but loopback could not be brought up ({e}): the kernel may fail to start"
    out["filesystem"] = _read_only_view(libc, writable) + via
    if libc.unshare(_CLONE_NEWPID) == 0:
        out["processes"] = "own PID namespace" + via
        _enter_pid_namespace(libc)
    else:
        out["processes"] = f"shared: {err()}"
    if os.geteuid() == 0 and not via:
        for cap in _DROP_CAPS:
            libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP: lost by every program this process executes
        libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: no setuid binary gets them back
        out["filesystem"] += "; kernel without CAP_SYS_ADMIN"
    return out


def _read_only_view(libc: Any, writable: str) -> str:
    """New mount namespace where every mount is read-only, except ``writable`` and /dev, /proc, /sys."""
    import ctypes

    if libc.unshare(_CLONE_NEWNS) != 0:
        return f"not protected: unshare(CLONE_NEWNS) failed ({os.strerror(ctypes.get_errno())})"
    w = os.path.realpath(writable)
    if (libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0  # changes stay in this namespace
            or libc.mount(w.encode(), w.encode(), None, _MS_BIND | _MS_REC, None) != 0):  # its own mount: stays rw
        return f"not protected: mount failed ({os.strerror(ctypes.get_errno())})"
    failed = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])  # octal escapes (spaces)
        if mp == w or mp.startswith(w + "/") or mp.split("/")[1] in ("proc", "sys", "dev"):
            continue
        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | sum(_MS_KEEP.get(o, 0) for o in fields[5].split(","))
        if libc.mount(None, mp.encode(), None, flags, None) != 0:
            failed.append(mp)
    return "read-only except the job folder" + (f" (could not protect {', '.join(failed)})" if failed else "")


def _enter_pid_namespace(libc: Any) -> None:
    """Fork into the PID namespace just created; the parent only waits and passes the child's exit status on.

    After ``unshare(CLONE_NEWPID)`` a process may no longer start threads (zmq needs them), but its first child is
    the namespace's init and may: that child carries on as the worker. When it dies, the kernel dies with it.
    """
    pid = os.fork()
    if pid:
        while True:
            try:
                status = os.waitpid(pid, 0)[1]
                break
            except InterruptedError:
                continue
        code = os.waitstatus_to_exitcode(status)
        os._exit(code if code >= 0 else 128 - code)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG again: fork cleared it
    # a /proc of this namespace, so that pids read there mean what os.getpid() (now 1) and the kernel's pid mean
    if libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None) != 0:
        import ctypes

        raise OSError(ctypes.get_errno(), "cannot mount /proc in the worker's PID namespace")


def _own_descendants() -> list[int]:
    """This worker's descendants, if /proc numbers processes as this process sees them (else none, to be safe)."""
    try:
        if Path("/proc/self").resolve().name != str(os.getpid()):
            return []
    except OSError:
        return []
    return descendants(os.getpid())


def _kernel_memory() -> dict | None:
    """Peak address space and peak RSS of the kernel (this worker's ipykernel child), from /proc."""
    for pid in _own_descendants():
        try:
            if b"ipykernel" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            status = dict(ln.split(":", 1) for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
                          if ":" in ln)
        except OSError:
            continue

        def mb(key: str) -> float:
            return round(int(status.get(key, "0 kB").split()[0]) / 1024, 1)

        return {"vm_peak_mb": mb("VmPeak"), "rss_peak_mb": mb("VmHWM")}
    return None


def _error_output(o: dict) -> dict:
    return {"ename": str(o.get("ename", "")), "evalue": str(o.get("evalue", ""))[:2000],
            "traceback": [str(t)[:2000] for t in (o.get("traceback") or [])[:30]]}


def _execute(payload: dict, emit: Callable[..., None]) -> tuple[str, str]:
    # jsonschema imports rfc3987_syntax (an IRI checker nbformat never needs) when present: ~2 s per worker
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    import nbformat
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    nb = nbformat.reads(payload["notebook"], as_version=4)
    cell_timeout = float(payload["cell_timeout"])
    collect = set(payload.get("collect") or ())
    executed: dict[str, Any] = {}

    def on_cell_executed(cell: Any, cell_index: int, execute_reply: dict | None, **_: Any) -> None:
        reply = execute_reply or {}
        timed_out = bool(reply) and "header" not in reply  # nbclient's stand-in reply after a cell timeout
        content = reply.get("content", {})
        executed[cell.get("id")] = cell
        outputs = cell.get("outputs", [])
        errors = [_error_output(o) for o in outputs if o.get("output_type") == "error"]
        displayed = [{"mime": m, "data": o["data"][m]} for o in outputs
                     if o.get("output_type") in ("display_data", "execute_result") for m in o.get("data", {})
                     if m in collect]
        emit("cell", id=cell.get("id"), index=cell_index, status=content.get("status"), timed_out=timed_out,
             ename=content.get("ename"), evalue=str(content.get("evalue", ""))[:2000], errors=errors,
             displayed=displayed, kernel=_kernel_memory())
        if timed_out and not any(e["ename"] == "KeyboardInterrupt" for e in errors):
            raise _KernelStuck(f"a cell ran over {cell_timeout:g} s and the kernel did not respond to the interrupt")

    try:
        # output None: papermill would rewrite the whole notebook after every cell; the events carry the results
        # and the executed notebook is written once, at the end
        papermill.execute_notebook(
            nb, None, parameters=payload["parameters"], kernel_name="python3", cwd=payload["workdir"],
            progress_bar=False, log_output=False, start_timeout=int(payload["start_timeout"]),
            execution_timeout=cell_timeout,
            # nbclient options, passed through by papermill: keep going past errors, interrupt a cell that runs
            # over its time and go on, no graceful shutdown
            allow_errors=True, interrupt_on_timeout=True, raise_on_iopub_timeout=False, iopub_timeout=5,
            error_on_timeout={"ename": "Timeout", "evalue": f"the cell ran over {cell_timeout:g} s", "traceback": []},
            shutdown_kernel="immediate", on_cell_executed=on_cell_executed)
        outcome = "ok", ""
    except PapermillExecutionError:
        outcome = "ok", ""  # some cells raised: expected, the events say which
    except DeadKernelError:
        outcome = "crashed", "the kernel died (the notebook exited its process or was killed)"
    except _KernelStuck as e:
        outcome = "stuck", str(e)
    except Exception as e:  # noqa: BLE001 -- reported; the caller decides what it means
        outcome = "error", f"{type(e).__name__}: {str(e)[:300]}"
    nb.cells = [executed.get(c.get("id"), c) for c in nb.cells]
    try:
        nbformat.write(nb, payload["output"])
    except (OSError, ValueError):  # the notebook may have deleted its job folder: only this copy is lost
        pass
    return outcome


def _worker_main(argv: list[str]) -> int:
    """The worker process: payload (JSON) on stdin, events (JSON lines) on the fd named in argv."""
    fd = int(argv[argv.index("--worker") + 1])
    os.set_inheritable(fd, False)  # the kernel must not get the event pipe
    payload = json.loads(sys.stdin.buffer.read())
    events = os.fdopen(fd, "w", buffering=1, encoding="utf-8")

    def emit(event: str, **kw: Any) -> None:
        events.write(json.dumps({"event": event, **kw}) + "\n")
        events.flush()

    emit("sandbox", **_enter_sandbox(payload))
    try:
        outcome, message = _execute(payload, emit)
    except BaseException as e:  # noqa: BLE001
        outcome, message = "error", f"{type(e).__name__}: {e}"
    emit("done", outcome=outcome, message=message)
    for pid in _own_descendants():  # anything the notebook left running
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.path.pop(0)  # run by path: this file's folder must not shadow top-level modules
    sys.exit(_worker_main(sys.argv[1:]))
