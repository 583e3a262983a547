"""Data capture off the server's process: the request path keeps raw bytes, a child process writes records.

Why a process and not a thread: a writer thread shares its worker's GIL with the event loop. Turning
a request into a SageMaker record costs several microseconds of Python, and while the thread held
the GIL the event loop waited for it (up to the interpreter's 5 ms switch interval): the capture
server spent about 11 % more CPU per single-record request than the plain one (bench/bench_capture.py,
before this module). Now:

- `CaptureWriter.offer` (the event loop): at most one `random()` call for sampling, then one frame (a
  packed head of timestamp and lengths, the cached media types, the raw request and answer bytes)
  appended to a deque. No JSON, no uuid, no lock, no per-record work anywhere else in the process.
- a feeder thread, every HANDOFF_SECONDS, joins the pending frames and writes them to the child's
  stdin: C-level work only, and `os.write` releases the GIL while the kernel copies.
- the child (`python -m kubesage.monitoring.capture_writer`, one per server worker) decodes the
  frames, drops the `Phone` field, builds the records (kubesage.monitoring.capture.record_line) and
  appends them to one JSON Lines file per hour, every FLUSH_SECONDS and at end of input. It runs at
  a lower priority (nice 10) than the server, and ignores SIGTERM and SIGINT: the server closes the
  pipe once it has handed everything over.

The frame format is private to this module (both ends are here). `flush()` hands over what is pending
and waits until the child has written it; without a child (not started, or it could not start or
died) the same records are written from this process.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from kubesage.monitoring.capture import CaptureConfig, hour_prefix, record_line

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0  # how often the child writes files
# How often the server hands its frames to the child: often, so that the request bytes a frame copied
# are freed while the allocator still has them in cache.
HANDOFF_SECONDS = 0.1
# Frames waiting for the feeder; past this (a stalled child or disk) new ones are dropped and
# counted, never held in memory without bound.
MAX_PENDING = 100_000
# How long close() and flush() wait for the child to write what it was given.
CHILD_WAIT_SECONDS = 30.0

# A record frame: kind, inference time (epoch seconds), the lengths of the request body, the answer,
# the request's media type and the answer's; then the media types, the body and the answer.
_RECORD = b"R"
# A flush frame: the child writes everything before it, then answers with one line, the count written.
_FLUSH = b"F"
_HEAD = struct.Struct("<cdIIHH")
# The head in two parts, as `offer` packs it: the per-request part, and the media types' part (cached).
_TIMED = struct.Struct("<cdII")
_TYPES = struct.Struct("<HH")
# Media types encoded once (a server sees a handful); an unbounded variety is encoded each time.
_MAX_CACHED_TYPES = 64
# A media type longer than this is cut (a frame holds its length in 16 bits; real ones are short).
_MAX_TYPE_BYTES = 1024


class Capture(NamedTuple):
    """One answered request, as the child decodes it from a frame (a named tuple: built per record, and
    a frozen dataclass's __init__ cost three times as much)."""

    epoch: float
    body: bytes
    content_type: str | None
    answer: bytes
    answer_type: str


def _flush_frame() -> bytes:
    return _HEAD.pack(_FLUSH, 0.0, 0, 0, 0, 0)


def read_frames(data: bytes | bytearray | memoryview) -> tuple[list[Capture | None], int]:
    """The complete frames at the start of `data` (None stands for a flush frame) and how many bytes they take."""
    view = memoryview(data)
    frames: list[Capture | None] = []
    offset = 0
    while len(view) - offset >= _HEAD.size:
        kind, epoch, body_len, answer_len, ct_len, at_len = _HEAD.unpack_from(view, offset)
        end = offset + _HEAD.size + ct_len + at_len + body_len + answer_len
        if end > len(view):
            break
        if kind == _FLUSH:
            frames.append(None)
        else:
            start = offset + _HEAD.size
            content_type = bytes(view[start : start + ct_len]).decode("latin-1") or None
            start += ct_len
            answer_type = bytes(view[start : start + at_len]).decode("latin-1")
            start += at_len
            body = bytes(view[start : start + body_len])
            answer = bytes(view[start + body_len : end])
            frames.append(Capture(epoch, body, content_type, answer, answer_type))
        offset = end
    return frames, offset


# ------------------------------------------------------------------ files (the child's side)


@dataclass
class RecordFiles:
    """Captures to SageMaker records in JSON Lines files: one file per writer per hour, appended in batches."""

    config: CaptureConfig
    written: int = 0
    dropped: int = 0
    _files: dict[int, Path] = field(default_factory=dict)
    _count: int = 0
    # Event ids: a random per-writer prefix and a counter, in a UUID's shape (uuid4 per record cost as
    # much as the rest of the record).
    _id_prefix: str = field(default_factory=lambda: str(uuid.uuid4())[:24])

    def write(self, captures: list[Capture]) -> int:
        """Write `captures`; returns how many were written (a failed file is logged and counted, never raised)."""
        by_file: dict[Path, list[bytes]] = {}
        for capture in captures:
            self._count += 1
            event_id = f"{self._id_prefix}{self._count:012x}"
            line = record_line(
                capture.body, capture.content_type, capture.answer, capture.answer_type, capture.epoch, event_id
            )
            by_file.setdefault(self._file_for(capture.epoch), []).append(line)
        written = 0
        for path, lines in by_file.items():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("ab") as handle:
                    handle.write(b"\n".join(lines) + b"\n")
                written += len(lines)
            except OSError as exc:  # capture must never take the endpoint down: log and count
                self.dropped += len(lines)
                logger.error("data capture could not write %s: %s", path, exc)
        self.written += written
        return written

    def _file_for(self, epoch: float) -> Path:
        """One file per writer per hour (SageMaker also names its files by a uuid); looked up by the hour."""
        hour = int(epoch) // 3600
        path = self._files.get(hour)
        if path is None:
            path = self._files[hour] = hour_prefix(self.config, epoch) / f"{uuid.uuid4()}.jsonl"
        return path


def serve_pipe(files: RecordFiles, source: int, answers: int, flush_seconds: float = FLUSH_SECONDS) -> None:
    """The child's loop: frames from `source` until end of input, records written every `flush_seconds`
    and whenever a flush frame asks (then the count written so far goes to `answers`, one line)."""
    buffer = bytearray()
    pending: list[Capture] = []
    selector = selectors.DefaultSelector()
    selector.register(source, selectors.EVENT_READ)
    deadline = time.monotonic() + flush_seconds
    while True:
        ready = selector.select(max(0.0, deadline - time.monotonic()))
        chunk = os.read(source, 1 << 20) if ready else None
        if chunk is not None:
            buffer += chunk
            frames, used = read_frames(buffer)
            del buffer[:used]
            for item in frames:
                if item is None:
                    files.write(pending)
                    pending = []
                    os.write(answers, b"%d\n" % files.written)
                else:
                    pending.append(item)
        if chunk == b"" or time.monotonic() >= deadline:
            files.write(pending)
            pending = []
            deadline = time.monotonic() + flush_seconds
        if chunk == b"":
            return


def main() -> None:
    """`python -m kubesage.monitoring.capture_writer`: the configuration comes from the environment."""
    config = CaptureConfig.from_env()
    if config is None:
        raise SystemExit("the capture writer needs KUBESAGE_CAPTURE_DIR (it is started by the server)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s capture-writer: %(message)s")
    # The end of input is the one stop signal: a SIGTERM or Ctrl-C sent to the server's process group
    # must not lose what the server handed over; the server closes the pipe once it has flushed.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Background work: where it shares a core with the server, the server goes first. If the writer
    # falls behind, the pipe fills, the server's frames wait in its deque (bounded by MAX_PENDING).
    os.nice(10)
    files = RecordFiles(config)
    serve_pipe(files, sys.stdin.fileno(), sys.stdout.fileno())
    if files.dropped:
        logger.error("data capture dropped %d records it could not write", files.dropped)


# ------------------------------------------------------------------ the server's side


@dataclass
class CaptureWriter:
    """Sampled capture for one server worker: `offer` on the event loop, records written by a child process."""

    config: CaptureConfig
    handoff_seconds: float = HANDOFF_SECONDS
    dropped: int = 0
    _pending: collections.deque[bytes] = field(default_factory=collections.deque)
    _types: dict[tuple[str | None, str], bytes] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _feeder: threading.Thread | None = None
    _child: subprocess.Popen[bytes] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)  # the feeder and flush() take turns
    _local: RecordFiles | None = None  # the same encoding in this process, when no child runs

    def start(self) -> CaptureWriter:
        if self._feeder is None:
            self._child = self._spawn()
            self._feeder = threading.Thread(target=self._feed, name="data-capture", daemon=True)
            self._feeder.start()
        return self

    def offer(self, body: bytes, content_type: str | None, answer: bytes, answer_type: str) -> None:
        """The hot path: at most one sampling draw, then the timestamp, the lengths and the raw bytes as
        one frame appended to a deque (append is thread-safe). An immutable bytes object, not a tuple:
        the garbage collector never walks it, and a tuple holding the request's objects for the
        hand-off cost more than the copy (measured)."""
        if self.config.percent < 100 and random.random() * 100 >= self.config.percent:
            return
        pending = self._pending
        if len(pending) >= MAX_PENDING:
            self.dropped += 1
            return
        types = self._types.get((content_type, answer_type)) or self._type_bytes(content_type, answer_type)
        pending.append(b"".join((_TIMED.pack(_RECORD, time.time(), len(body), len(answer)), types, body, answer)))

    def _type_bytes(self, content_type: str | None, answer_type: str) -> bytes:
        # Header values arrive decoded as latin-1, so they encode back losslessly.
        request = (content_type or "").encode("latin-1", errors="replace")[:_MAX_TYPE_BYTES]
        response = answer_type.encode("latin-1", errors="replace")[:_MAX_TYPE_BYTES]
        encoded = _TYPES.pack(len(request), len(response)) + request + response
        if len(self._types) < _MAX_CACHED_TYPES:
            self._types[(content_type, answer_type)] = encoded
        return encoded

    def flush(self) -> int:
        """Hand over what is pending and wait until it is written; returns how many records were written
        in all (by the child), or in this call (without a child)."""
        with self._lock:
            written = self._send_pending()
            child = self._child
            if child is None:
                return written
            try:
                return self._ask_child(child)
            except OSError as exc:
                logger.error("the data capture writer (pid %d) stopped: %s; writing here", child.pid, exc)
                self._child = None
                return written

    def close(self) -> None:
        """Write what is pending and stop the child (it writes what it holds, then exits)."""
        self._stop.set()
        if self._feeder is not None:
            self._feeder.join(timeout=CHILD_WAIT_SECONDS)
            self._feeder = None
        self.flush()
        child, self._child = self._child, None
        if child is not None:
            if child.stdin is not None:
                child.stdin.close()
            try:
                child.wait(timeout=CHILD_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                logger.error("the data capture writer (pid %d) did not finish in time; stopped", child.pid)
                child.kill()
            if child.stdout is not None:
                child.stdout.close()

    def _feed(self) -> None:
        while not self._stop.wait(self.handoff_seconds):
            with self._lock:
                self._send_pending()

    def _send_pending(self) -> int:
        """The pending frames to the child (or written here without one); returns how many were written here.

        popleft is thread-safe against offer's append, where swapping the deque for a new one would not
        be; `os.write` releases the GIL while the kernel copies."""
        pending = self._pending
        frames = b"".join([pending.popleft() for _ in range(len(pending))])
        if not frames:
            return 0
        child = self._child
        if child is not None and child.stdin is not None:
            try:
                _write_all(child.stdin.fileno(), frames)
                return 0
            except OSError as exc:  # what the child did not read is written here (maybe a record twice)
                logger.error("the data capture writer (pid %d) stopped: %s; writing here", child.pid, exc)
                self._child = None
        if self._local is None:
            self._local = RecordFiles(self.config)
        captures, _ = read_frames(frames)
        return self._local.write([c for c in captures if c is not None])

    def _ask_child(self, child: subprocess.Popen[bytes]) -> int:
        """The child writes what it was given and answers with its count written."""
        assert child.stdin is not None and child.stdout is not None
        _write_all(child.stdin.fileno(), _flush_frame())
        answer = _read_line(child.stdout.fileno(), CHILD_WAIT_SECONDS)
        if not answer.strip().isdigit():
            raise OSError(f"it answered {answer[:80]!r} to a flush")
        return int(answer)

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        env = {**os.environ, **self.config.to_env()}
        command = [sys.executable, "-m", "kubesage.monitoring.capture_writer"]
        try:
            # stderr is the server's: the child's errors land in the server log.
            return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        except OSError as exc:
            logger.error("could not start the data capture writer (%s); capturing in the server process", exc)
            return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_line(fd: int, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    line = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            if not selector.select(max(0.0, deadline - time.monotonic())):
                raise OSError(f"no answer within {timeout:.0f} s")
            chunk = os.read(fd, 64)
            if not chunk:
                raise OSError("it exited")
            line += chunk
    return line


if __name__ == "__main__":
    main()
