"""What `gpuwatch top` costs: time to first frame and steady CPU, as ratios to a baseline.

Every program runs in a pseudo-terminal of the given size (no tmux needed), one after the
other, in the same run, and is read from outside through /proc (psutil):

- time to first frame: from the fork to the first bytes of the program's first screen (a
  marker word in its output); for gpuwatch also the first frame with data (the word LIVE);
  the median of `--starts` starts, since one start on a shared machine is noisy;
- steady CPU: CPU seconds over `--seconds` of wall time after a short warm-up, as % of a core;
- RSS at the end of the steady window.

Default run (any machine): `gpuwatch top --demo` against bench/table_app.py, a minimal Textual
app redrawing a DataTable that fills the same terminal at the same interval, at 80×24 and
200×50. Ratios > 1 mean gpuwatch costs more than the baseline.

On a GPU node, `--versus-nvitop`: `gpuwatch top` (real NVML, no --demo) against
`nvitop -m full` at the same size and interval, optionally under `--load` (bench/gpu_load.py, a
PyTorch matmul loop on every GPU). The goal there is a CPU ratio ≤ 0.5.

    python bench/tui_bench.py                      # 2 × 2 runs of ~40 s
    python bench/tui_bench.py --versus-nvitop --load
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import pty
import select
import signal
import statistics
import struct
import sys
import termios
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Program:
    label: str
    argv: tuple[str, ...]
    first_frame: bytes
    """A word in the program's first screen."""
    first_data: bytes | None = None
    """A word that appears once the screen shows real data (None: same as the first frame)."""


@dataclass(frozen=True)
class Result:
    label: str
    size: tuple[int, int]
    first_frame_seconds: float | None
    first_data_seconds: float | None
    cpu_percent: float | None
    rss_bytes: int | None
    exit_status: int | None


class PtyRun:
    """One program on a pty of `cols`×`rows`; its output is drained on a thread and searched."""

    def __init__(self, argv: Sequence[str], cols: int, rows: int, env: dict[str, str]) -> None:
        self.started = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:  # the child: size its terminal, then become the program
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execvpe(argv[0], list(argv), env)
        self.pid = pid
        self.fd = fd
        self.process = psutil.Process(pid)
        self._seen: dict[bytes, float] = {}
        self._wanted: list[bytes] = []
        self._tail = b""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def watch_for(self, *words: bytes) -> None:
        with self._lock:
            self._wanted.extend(words)

    def seen_at(self, word: bytes) -> float | None:
        with self._lock:
            at = self._seen.get(word)
        return None if at is None else at - self.started

    def wait_for(self, word: bytes, timeout: float) -> float | None:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            at = self.seen_at(word)
            if at is not None:
                return at
            if self.exited():
                return None
            time.sleep(0.01)
        return None

    def _drain(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.5)
                if not ready:
                    if self.exited():
                        return
                    continue
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            now = time.perf_counter()
            with self._lock:
                text = self._tail + chunk
                for word in self._wanted:
                    if word not in self._seen and word in text:
                        self._seen[word] = now
                self._tail = text[-64:]

    def exited(self) -> bool:
        try:
            return self.process.status() == psutil.STATUS_ZOMBIE or not self.process.is_running()
        except psutil.NoSuchProcess:
            return True

    def cpu_seconds(self) -> float:
        t = self.process.cpu_times()
        return float(t.user + t.system + t.children_user + t.children_system)

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def quit(self, keys: bytes = b"q", timeout: float = 10.0) -> int | None:
        """Ask it to quit as a user would; SIGTERM, then SIGKILL, if it does not."""
        with contextlib.suppress(OSError):
            os.write(self.fd, keys)
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(self.pid, sig)
                time.sleep(1.0)
                done, status = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    os.close(self.fd)
                    return os.waitstatus_to_exitcode(status)
            except ProcessLookupError:
                break
        return None


def start(program: Program, size: tuple[int, int]) -> tuple[PtyRun, float | None, float | None]:
    """Start `program` on a fresh pty; wait for its first frame and its first data."""
    env = dict(os.environ)
    env["TERM"] = "xterm-256color"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NO_COLOR", None)
    cols, rows = size
    run = PtyRun(program.argv, cols, rows, env)
    data_word = program.first_data or program.first_frame
    run.watch_for(program.first_frame, data_word)
    first = run.wait_for(program.first_frame, 30.0)
    data = run.wait_for(data_word, 30.0) if first is not None else None
    return run, first, data


def median(values: list[float | None]) -> float | None:
    known = sorted(v for v in values if v is not None)
    return statistics.median(known) if len(known) == len(values) and known else None


def measure(program: Program, size: tuple[int, int], seconds: float, warmup: float, starts: int) -> Result:
    """Median first frame over `starts` starts; steady CPU and RSS from the last one."""
    firsts: list[float | None] = []
    datas: list[float | None] = []
    for _ in range(starts - 1):
        run, first, data = start(program, size)
        run.quit()
        firsts.append(first)
        datas.append(data)
    run, first, data = start(program, size)
    firsts.append(first)
    datas.append(data)
    cpu = rss = None
    try:
        if data is not None:
            time.sleep(warmup)
            cpu0, wall0 = run.cpu_seconds(), time.perf_counter()
            time.sleep(seconds)
            cpu1, wall1 = run.cpu_seconds(), time.perf_counter()
            cpu = (cpu1 - cpu0) / (wall1 - wall0) * 100
            rss = run.rss()
    finally:  # an interrupted bench leaves no program running
        status = run.quit()
    return Result(program.label, size, median(firsts), median(datas), cpu, rss, status)


def parse_size(text: str) -> tuple[int, int]:
    cols, _, rows = text.partition("x")
    return int(cols), int(rows)


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or not b else f"{a / b:.2f}"


def seconds_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def report(
    pairs: list[tuple[Result, Result]], interval: float, seconds: float, starts: int, goal_cpu: float | None
) -> None:
    print(
        f"\nrefresh {interval:g} s · first frame: median of {starts} starts · steady CPU over {seconds:g} s"
        " as % of one core · same run, one program at a time"
    )
    header = (
        f"{'size':>7}  {'program':<16}{'first frame':>12}{'first data':>12}"
        f"{'CPU %':>8}{'RSS MiB':>9}{'exit':>6}"
    )
    print(header)
    print("-" * len(header))
    for a, b in pairs:
        for r in (a, b):
            cpu = "—" if r.cpu_percent is None else f"{r.cpu_percent:.2f}"
            rss = "—" if r.rss_bytes is None else f"{r.rss_bytes / 2**20:.0f}"
            print(
                f"{r.size[0]:>3}×{r.size[1]:<3}  {r.label:<16}{seconds_text(r.first_frame_seconds):>12}"
                f"{seconds_text(r.first_data_seconds):>12}{cpu:>8}{rss:>9}{r.exit_status!s:>6}"
            )
        frame = ratio(a.first_frame_seconds, b.first_frame_seconds)
        cpu_ratio = ratio(a.cpu_percent, b.cpu_percent)
        print(
            f"{'':>7}  ratio {a.label} / {b.label}: first frame {frame} · CPU {cpu_ratio}"
            f" · RSS {ratio(a.rss_bytes, b.rss_bytes)}"
        )
    frames = [a.first_data_seconds for a, _ in pairs if a.first_data_seconds is not None]
    if frames:
        print(f"\ngoal: first frame with data ≤ 1 s; slowest here {max(frames):.2f} s")
    if goal_cpu is not None:
        cpus = [ratio(a.cpu_percent, b.cpu_percent) for a, b in pairs]
        print(f"goal: CPU ratio ≤ {goal_cpu:g}; here {', '.join(cpus)}")


def main() -> int:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # terminate = interrupt: clean up
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="80x24,200x50", help="terminal sizes, COLSxROWS,…")
    parser.add_argument("--interval", type=float, default=1.0, help="refresh interval of every program")
    parser.add_argument("--seconds", type=float, default=30.0, help="steady window")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after the first data frame")
    parser.add_argument(
        "--starts", type=int, default=5, help="starts per program; first frame is their median"
    )
    parser.add_argument("--versus-nvitop", action="store_true", help="real GPUs: gpuwatch top vs nvitop")
    parser.add_argument("--load", action="store_true", help="run bench/gpu_load.py meanwhile (PyTorch)")
    args = parser.parse_args()

    python = sys.executable
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    if args.versus_nvitop:
        ours = Program(
            "gpuwatch top",
            (python, "-m", "gpuwatch", "top", "--refresh", str(args.interval)),
            b"Overview",
            b"LIVE",
        )
        # As a module: a wheel installed with --target puts no script on PATH.
        theirs = Program(
            "nvitop",
            (sys.executable, "-m", "nvitop", "-m", "full", "--interval", str(args.interval)),
            b"NVITOP",
        )
    else:
        ours = Program(
            "gpuwatch --demo",
            (python, "-m", "gpuwatch", "top", "--demo", "--refresh", str(args.interval)),
            b"Overview",
            b"LIVE",
        )
        theirs = Program(
            "textual table",
            (python, str(REPO / "bench" / "table_app.py"), "--interval", str(args.interval)),
            b"baseline",
        )
    load = None
    if args.load:
        load = psutil.Popen([python, str(REPO / "bench" / "gpu_load.py")])
        time.sleep(10)  # let the load reach its steady state (and its context show up)
    try:
        pairs = []
        for size in sizes:
            a = measure(ours, size, args.seconds, args.warmup, args.starts)
            b = measure(theirs, size, args.seconds, args.warmup, args.starts)
            pairs.append((a, b))
        report(pairs, args.interval, args.seconds, args.starts, 0.5 if args.versus_nvitop else None)
    finally:
        if load is not None:
            load.terminate()
            load.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
