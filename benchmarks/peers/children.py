"""The peer benchmark's child processes and the peers' virtual environment: progress lines,
running a child alone with its peak RSS (os.wait4), the thread-pinned environment of every
child, and making benchmarks/peers/.venv (see run.py for why it exists)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = Path(sys.executable).parent
PEER_PINS = ["torch==2.14.1", "torchvision==0.29.1", "diffusers==0.42.1", "denoising-diffusion-pytorch==2.3.4",
             "numpy", "pillow"]
STAMP = ".bench-peers-stamp"


class Log:
    """Progress lines stamped with the time since the start."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        s = int(time.perf_counter() - self.t0)
        print(f"[{s // 60:3d}:{s % 60:02d}] {msg}", flush=True)


log = Log()


@dataclass
class Child:
    """A finished child process: exit code, wall seconds, peak RSS (KiB) and its output's tail."""

    rc: int
    seconds: float
    peak_rss_kib: int
    tail: str


class ChildFailed(RuntimeError):
    pass


def run_child(cmd: list[str], env: dict[str, str], log_file: Path | None = None, echo: bool = True) -> Child:
    """Run ``cmd`` alone, stream its output (and copy it to ``log_file``), and measure it.

    os.wait4 returns the rusage of exactly this child, so ``ru_maxrss`` is its peak RSS."""
    t = time.perf_counter()
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    tail = b""
    sink = open(log_file, "ab") if log_file else None
    try:
        assert p.stdout is not None
        while chunk := p.stdout.read1(65536):
            if echo:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            if sink:
                sink.write(chunk)
            tail = (tail + chunk)[-65536:]
    finally:
        if sink:
            sink.close()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    return Child(p.returncode, time.perf_counter() - t, usage.ru_maxrss, tail.decode(errors="replace"))


def checked(child: Child, what: str) -> Child:
    if child.rc != 0:
        last = [ln for ln in child.tail.replace("\r", "\n").splitlines() if ln.strip()][-3:]
        raise ChildFailed(f"{what} exited with code {child.rc}: " + " | ".join(last))
    return child


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    return env


def ensure_peer_venv(venv: Path, env: dict[str, str], logs: Path) -> Path:
    """The peers' python, after creating or refreshing ``venv`` when its stamp is stale."""
    py = venv / "bin" / "python"
    want = " ".join(PEER_PINS)
    if peer_venv_ready(venv):
        log(f"peer venv {venv} is up to date ({want})")
        return py
    if sys.version_info[:2] != (3, 11):
        log(f"warning: python {platform.python_version()}; the torch 2.14.1 / torchvision 0.29.1 wheels on this "
            "machine's disk are for Python 3.11, so pip may have to download them (or fail)")
    if not py.exists():
        log(f"creating the peer venv {venv}")
        checked(run_child([sys.executable, "-m", "venv", venv], env), "python -m venv")
    pip_log = logs / "peer-venv-pip.log"
    log(f"installing {want} into {venv} (~5.5 GB, mostly the CUDA build of torch from this machine's disk; "
        f"a minute or more; pip's output in {pip_log})")
    checked(run_child([py, "-m", "pip", "install", "--progress-bar", "off", *PEER_PINS], env, pip_log, echo=False),
            f"pip install (see {pip_log})")
    check = (f"import sys; sys.path.insert(0, {str(HERE)!r})\n"
             "import torch, torchvision, diffusers, denoising_diffusion_pytorch, diffusers_ddpm, lucidrains_ddpm\n"
             "print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'diffusers', diffusers.__version__)\n"
             f"assert torch.__version__.split('+')[0] == {PEER_PINS[0].split('==')[1]!r}, torch.__version__")
    checked(run_child([py, "-c", check], env), "importing the peer scripts in the peer venv")
    (venv / STAMP).write_text(want + "\n")
    return py


def peer_venv_ready(venv: Path) -> bool:
    """Whether ``venv`` exists and its stamp names the pinned versions."""
    stamp = venv / STAMP
    return (venv / "bin" / "python").exists() and stamp.exists() and stamp.read_text().strip() == " ".join(PEER_PINS)
