"""Run folders: `config.json`, `metrics.jsonl`, `model.safetensors`, `checkpoint.safetensors`, `status.json`.

Every file is written atomically (temporary file, fsync, rename), so a crash or a restart leaves either the
old or the new version, never half of one. No pickle anywhere: tensors go to safetensors, everything else
to JSON. A run has one writer: whoever trains it holds an exclusive lock on its folder (`.lock`, which also
says who holds it) for as long as it trains. Every reader goes through `read_run`, which never raises for a
damaged file: it says, per file, what is wrong.
"""
from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import functools
import hashlib
import itertools
import json
import math
import os
import re
import secrets
import socket
import stat
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from . import environment
from .events import EVALUATION_KEYS, EventKind, TrainEvent, last_evaluation
from .models import VAE, ModelConfig, upgrade_state_dict

RUNS_DIR_ENV = "VAE_RUNS_DIR"
CONFIG, METRICS, MODEL, CHECKPOINT, STATUS, LOCK, META = (
    "config.json", "metrics.jsonl", "model.safetensors", "checkpoint.safetensors", "status.json", ".lock", "meta.json")
TRASH = ".trash"  # deleted runs wait here, under the runs folder, until restored
TRASH_STAMP = "%Y%m%d-%H%M%S"  # a deleted run's name in the trash: when it was deleted, a dash, its own name
RUN_FILES = (CONFIG, METRICS, MODEL, CHECKPOINT, STATUS)
MAX_HEADER_BYTES = 1 << 20  # a safetensors header larger than this is not one of ours
MAX_JSON_BYTES = 16 << 20  # config.json, status.json, meta.json, sweep.json: ours are a few kilobytes
MAX_METRICS_BYTES = 256 << 20  # about 1.3 million rows: a run of 2.5e9 samples at M = 100 (schedules.log_every)
LABEL_LIMITS = {"name": 200, "note": 10_000, "tag": 100, "tags": 50}  # characters of a run's name, note, each tag; tags
NAME_LIMIT = 200  # characters of a name this project makes into a folder name (a file name is at most 255 bytes)
NAME_BYTES = 255  # the longest file or folder name most file systems take
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


class RunState(enum.StrEnum):
    """Where a run stands. The trainer writes running, paused, finished, stopped and failed; the app adds the
    states of a run it has started but not yet heard from; a reader concludes interrupted (it says running but
    nobody holds its lock) and damaged (its files cannot be read)."""
    STARTING = "starting"
    CHOOSING_STEP_SIZE = "choosing step size"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    DAMAGED = "damaged"

    @property
    def active(self) -> bool:
        """Still training."""
        return self in (RunState.STARTING, RunState.CHOOSING_STEP_SIZE, RunState.RUNNING, RunState.PAUSED)

    @property
    def starting(self) -> bool:
        """Started, not yet training: the start-up and the step-size trial."""
        return self in (RunState.STARTING, RunState.CHOOSING_STEP_SIZE)

    def after(self, kind: EventKind) -> RunState:
        """The state a run is in once the trainer has reported an event of `kind` in this state."""
        if kind == EventKind.TRIAL:
            return RunState.CHOOSING_STEP_SIZE
        if kind in (EventKind.STARTED, EventKind.RESUMED):
            return RunState.RUNNING
        if kind == EventKind.PAUSED:
            return RunState.PAUSED
        if kind.ends:
            return RunState(str(kind))
        # minibatches, evaluations, checkpoints: training has begun (pause and resume come as their own events)
        return RunState.RUNNING if self.starting else self


class RunError(RuntimeError):
    """A run folder cannot be used as asked: it is taken, holds something else, or is damaged; the message says
    which and what to do."""


def default_runs_dir() -> Path:
    return Path(environment.folder(RUNS_DIR_ENV, "runs"))


# Names are data, never paths.

def safe_name(text, limit: int = NAME_LIMIT) -> str:
    """`text` made into one folder name: every run of characters other than letters, digits and ``._+=-`` becomes
    ``_``, with no leading dot or dash (never ``.``, ``..``, a hidden folder or a flag), at most `limit` characters (a
    longer one keeps its start and a hash of the whole, so two long names stay apart)."""
    name = _UNSAFE.sub("_", str(text)).lstrip(".-") or "run"
    if len(name) > limit:
        name = f"{name[:limit - 9]}-{hashlib.sha256(str(text).encode()).hexdigest()[:8]}"
    return name


def check_name_lengths(path: str | os.PathLike) -> None:
    """RunError if a part of `path` is longer than a file system takes (255 bytes), before anything is made."""
    for part in Path(path).parts:
        if len(os.fsencode(part)) > NAME_BYTES:
            raise RunError(f"the folder name {part[:40]}... is {len(os.fsencode(part)):,} bytes long; a file system "
                           f"takes at most {NAME_BYTES}: give a shorter name")


# Atomic files.

def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Writes `data` to `path` through a temporary file, fsync and rename: the old file stays whole until the new
    one is. An OSError (the disk full, a file-size limit, a read-only folder) names `path` and leaves no temporary
    file."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; runs and models are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(e, OSError) and e.filename is None:
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise


def write_json(path: str | os.PathLike, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


class RefusedFile(OSError):
    """A file a reader will not read: not a regular file (a FIFO, a device, a socket, a link to one), or larger than
    any file of its kind this project writes. Its message says which."""

    def __str__(self) -> str:
        return self.args[0]


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def _open_regular(path: Path) -> tuple[int, int]:
    """A descriptor of the regular file at `path` (links followed) and its size; RefusedFile for anything else.
    Opened without blocking, so a FIFO is refused instead of waiting for a writer."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
        raise RefusedFile(f"{path.name} is {kind}, not a regular file")
    return fd, info.st_size


def read_bytes(path: str | os.PathLike, limit: int | None = None, whole: bool = True) -> bytes:
    """The bytes of the regular file at `path`. With `limit`, RefusedFile for a larger file (`whole`), or its first
    `limit` bytes (not `whole`); the file's size is checked before anything is read."""
    path = Path(path)
    fd, size = _open_regular(path)
    try:
        if limit is not None and size > limit and whole:
            raise RefusedFile(f"{path.name} holds {size:,} bytes, more than the {limit:,} a file of its kind may hold")
        want = size if limit is None else min(size, limit)
        chunks, got = [], 0
        while got < want:
            chunk = os.read(fd, min(want - got, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_json(path: str | os.PathLike):
    return json.loads(read_bytes(path, MAX_JSON_BYTES))


def write_metrics(path: str | os.PathLike, rows: list[dict]) -> None:
    write_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


@dataclass(frozen=True)
class MetricsRead:
    """What a metrics file held when it was last read well: its first `length` bytes (whole lines), their digest and
    their rows. A later read of a file that starts with the same bytes (the recorder rewrites it whole, with rows
    added at the end) parses only the lines after them."""
    length: int
    digest: bytes
    rows: list[dict]


def _digest(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=16).digest()


def read_metrics(path: str | os.PathLike) -> tuple[list[dict], str | None]:
    """The rows of a metrics file and, if some could not be read, what was lost; a missing file has no rows.
    Rows are kept up to the first that cannot be read: a file cut mid-line keeps all its whole lines. At most
    MAX_METRICS_BYTES are read; a file that is not a regular file has no rows, and says so."""
    rows, lost, _ = read_metrics_after(path, None)
    return rows, lost


def read_metrics_after(path: str | os.PathLike, known: MetricsRead | None) -> tuple[list[dict], str | None,
                                                                                     MetricsRead | None]:
    """`read_metrics`, parsing only what follows `known` (an earlier read of the same file) when the file still
    starts with the bytes it read; also what this read read, for the next (None when some rows were lost)."""
    path = Path(path)
    if not path.exists():
        return [], None, None
    try:
        raw = read_bytes(path, MAX_METRICS_BYTES, whole=False)
        size = path.stat().st_size
    except OSError as e:
        return [], f"cannot be read ({e}); no rows are kept", None
    start, rows = 0, []
    if known is not None and len(raw) >= known.length and _digest(raw[:known.length]) == known.digest:
        start, rows = known.length, list(known.rows)
    text = raw[start:].decode("utf-8", errors="replace")
    lines = text.splitlines()
    if size > len(raw):  # only the first MAX_METRICS_BYTES: the last line read is cut
        lines = lines[:-1]
    before = raw[:start].count(b"\n") if start else 0  # lines already read, for the line numbers said
    for number, line in enumerate(lines, before + 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("samples_evaluated"), int):
                raise ValueError("not a row of metrics")
        except ValueError:
            return rows, (f"line {number} of {before + len(lines)} cannot be read; the {len(rows)} rows before it "
                          f"are kept"), None
        rows.append(row)
    if size > len(raw):
        return rows, (f"it holds {size:,} bytes, more than the {MAX_METRICS_BYTES:,} read; the {len(rows)} rows in "
                      f"them are kept"), None
    whole = raw.rfind(b"\n") + 1  # up to the last newline: a last line without one may still grow
    if whole < len(raw):
        rows_whole = rows[:-1] if raw[whole:].strip() else rows
        return rows, None, MetricsRead(whole, _digest(raw[:whole]), rows_whole)
    return rows, None, MetricsRead(len(raw), _digest(raw), rows)


# Safetensors, with the header checked before any tensor is allocated.

def read_header(path: str | os.PathLike) -> tuple[dict[str, tuple[int, ...]], dict]:
    """Shapes of the tensors in a safetensors file and its JSON-decoded metadata, from the header alone.
    Raises RunError when the file is not a whole safetensors file."""
    path = Path(path)
    try:
        fd, size = _open_regular(path)
        with os.fdopen(fd, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise RunError(f"{path.name} is truncated ({size} bytes)")
            (length,) = struct.unpack("<Q", raw)
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise RunError(f"{path.name} is truncated or not a safetensors file (header of {length} bytes "
                               f"in a file of {size})")
            header = json.loads(f.read(length))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path.name} cannot be read ({e})") from None
    metadata = header.pop("__metadata__", None) or {}
    try:
        shapes = {name: tuple(spec["shape"]) for name, spec in header.items()}
        end = max((spec["data_offsets"][1] for spec in header.values()), default=0)
        decoded = {k: json.loads(v) for k, v in metadata.items()}
    except (KeyError, TypeError, ValueError) as e:
        raise RunError(f"{path.name} has a malformed header ({e})") from None
    if 8 + length + end != size:
        raise RunError(f"{path.name} is truncated: its header describes {8 + length + end} bytes, the file has {size}")
    return shapes, decoded


def model_bytes(model: VAE, metadata: dict | None = None) -> bytes:
    """The model as safetensors bytes; its ModelConfig (and `metadata`) travel in the header."""
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    header = {"model_config": json.dumps(model.config.to_dict()), **{k: json.dumps(v) for k, v in (metadata or {}).items()}}
    return save_safetensors(tensors, metadata=header)


def save_model(model: VAE, path: str | os.PathLike, metadata: dict | None = None) -> None:
    write_atomic(path, model_bytes(model, metadata))


@functools.lru_cache(maxsize=256)
def _parameter_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The shape of each tensor of the network `config` describes, from the network itself built on the meta device
    (nothing allocated); once per config, as building it takes milliseconds and a page reads thousands of runs."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in VAE(config).state_dict().items()}


def checked_model_config(path: str | os.PathLike) -> tuple[ModelConfig, dict]:
    """The ModelConfig of a model file and its other metadata, once the tensors its header lists match that
    config: nothing is allocated for a file that claims a network it does not hold."""
    from .config import LIMITS

    shapes, metadata = read_header(path)
    try:
        config = ModelConfig.from_dict(metadata.pop("model_config"))
    except (KeyError, TypeError, ValueError) as e:
        raise RunError(f"{Path(path).name} holds no usable model_config ({e})") from None
    if config.latent_dim > LIMITS["latent_dim"] or max(config.hidden) > LIMITS["hidden_units"]:
        raise RunError(f"{Path(path).name} claims a network beyond the limits (J = {config.latent_dim}, hidden "
                       f"{list(config.hidden)})")
    if upgrade_state_dict(shapes) != _parameter_shapes(config):
        raise RunError(f"{Path(path).name}: its tensors do not match the network its metadata describes")
    return config, metadata


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[VAE, dict]:
    """A model saved by `save_model`, in eval mode, and the metadata saved with it. RunError if the file is
    damaged or its tensors do not match its metadata."""
    config, metadata = checked_model_config(path)
    tensors = upgrade_state_dict(load_safetensors(read_bytes(path)))  # a regular file, of the size its header said
    model = VAE(config)
    model.load_state_dict(tensors)
    if not all(bool(torch.isfinite(t).all()) for t in tensors.values()):
        raise RunError(f"{Path(path).name} holds non-finite weights")
    return model.to(device).eval(), metadata


# One writer per run.

class RunLock:
    """An exclusive lock on a run folder, held while its holder trains the run; the lock file says who holds it
    (by, pid, host, since). The operating system releases it when the holder's process ends, however it ends. A
    `.lock` that is not a run's lock (the user's own file) is refused, never overwritten; a lock whose recorded
    holder no longer exists on this host (a process that inherited it lives on) is taken over."""

    def __init__(self, run_dir: str | os.PathLike, by: str):
        self._fd = None
        self.run_dir = Path(run_dir)
        self.made_folder = not self.run_dir.exists()
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._fd, self.made_file = _open_lock(self.run_dir / LOCK)
        except OSError as e:
            raise RunError(f"{self.run_dir} cannot be written ({e.strerror}); give a folder you may write") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(self.run_dir, alive_only=False)
            if holder is not None and not holder_alive(holder):
                self._take_over()
            else:
                os.close(self._fd)
                self._fd = None
                raise RunError(f"{self.run_dir} is being trained by {describe_holder(holder)}; wait for it to end or "
                               f"stop it first (one writer per run)") from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, json.dumps({"by": by, "pid": os.getpid(), "host": socket.gethostname(),
                                       "since": time.time()}).encode())

    def _take_over(self) -> None:
        """A fresh lock file in place of one held by a process that is not the trainer it names."""
        assert self._fd is not None  # the lock file is open
        os.close(self._fd)
        fd, tmp = tempfile.mkstemp(dir=self.run_dir, prefix=f"{LOCK}.", suffix=".tmp")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.fchmod(fd, 0o644)
        os.replace(tmp, self.run_dir / LOCK)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def abandon(self) -> None:
        """Releases the lock of a claim that was refused, leaving the folder as it was: the lock file this lock made
        is removed, and the folder too if it made it and nothing else is in it."""
        self.release()
        if self.made_file:
            (self.run_dir / LOCK).unlink(missing_ok=True)
        if self.made_folder and self.run_dir.is_dir() and not any(self.run_dir.iterdir()):
            self.run_dir.rmdir()

    def __del__(self):
        self.release()


def _open_lock(path: Path) -> tuple[int, bool]:
    """A descriptor of the lock file at `path`, and whether this call made it; RunError for a `.lock` that is not
    a run's lock (a link, a FIFO, a folder, or a file that does not say who locked it)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644), True
    except FileExistsError:
        pass
    foreign = RunError(f"{path.parent} holds a {LOCK} that is not a run's lock; move it away, or give another folder")
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise foreign from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > 4096 or _lock_text(os.pread(fd, 4096, 0)) is None:
        os.close(fd)
        raise foreign
    return fd, False


def _lock_text(raw: bytes) -> dict | None:
    """What a lock file says ({} when empty: made, not yet written), or None when it is not a run's lock."""
    if not raw.strip():
        return {}
    try:
        said = json.loads(raw)
    except ValueError:
        return None
    return said if isinstance(said, dict) and "by" in said else None


def holder_alive(holder: dict) -> bool:
    """False when the holder's record names a process of this host that no longer exists (the lock is held by a
    process it left behind, or its record is stale); True otherwise, a holder elsewhere included."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def lock_holder(run_dir: str | os.PathLike, alive_only: bool = True) -> dict | None:
    """Who trains the run now ({"by", "pid", "host", "since"}), or None if nobody holds its lock (or, with
    `alive_only`, if the process its lock names has ended on this host)."""
    path = Path(run_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None  # not a lock of ours: nobody trains through it
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None  # nobody holds it exclusively
        except BlockingIOError:
            holder = _lock_text(os.pread(fd, 4096, 0)) or {"by": "another process"}
            return None if alive_only and not holder_alive(holder) else holder
    finally:
        os.close(fd)


def describe_holder(holder: dict | None) -> str:
    if not holder:
        return "nobody"
    who = holder.get("by", "another process")
    return f"{who} (pid {holder['pid']})" if "pid" in holder else who


def _refuse_unnamed(run_dir: str | os.PathLike) -> None:
    if str(run_dir).strip() == "":
        raise RunError("the run folder is empty; give a folder name, or leave it out for a new folder under ./runs")


def _refuse_held(run_dir: Path) -> None:
    holder = lock_holder(run_dir)
    if holder is not None:
        raise RunError(f"{run_dir} is being trained by {describe_holder(holder)}; wait for it to end or stop it first "
                       f"(one writer per run)")


def _refuse_occupied(run_dir: Path) -> None:
    present = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK) if run_dir.is_dir() else []
    if present:
        raise RunError(f"{run_dir} already holds {', '.join(present[:5])}{' ...' if len(present) > 5 else ''}; a new "
                       f"run needs an empty or new folder (to continue a run there, use --resume {run_dir})")


def claim_new_run(run_dir: str | os.PathLike, by: str) -> RunLock:
    """Locks `run_dir` for a new run, refusing a folder that already holds anything: a finished run, or files that
    were never a run, are never overwritten. It is checked before the lock (a refused claim touches nothing, a
    `.lock` of the user's included) and again after it, so two claimants cannot both pass."""
    _refuse_unnamed(run_dir)
    run_dir = Path(run_dir)
    check_name_lengths(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"{run_dir} is a file, not a folder; give a new folder for the run")
    _refuse_held(run_dir)
    _refuse_occupied(run_dir)
    lock = RunLock(run_dir, by)
    try:
        _refuse_occupied(run_dir)
    except RunError:
        lock.abandon()
        raise
    return lock


@contextlib.contextmanager
def claimed_new_run(run_dir: str | os.PathLike | None, runs_dir: str | os.PathLike | None, label: str,
                    by: str) -> Iterator[RunLock]:
    """The lock of a new run in `run_dir` (a new or empty folder) or a fresh folder under `runs_dir`, for the block
    that builds what trains it; if the block fails, the lock is released and the folder left as it was (one this
    call made is removed)."""
    if run_dir is not None:
        _refuse_unnamed(run_dir)
        check_name_lengths(run_dir)
    created = run_dir is None or not Path(run_dir).exists()
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(runs_dir, label)
    try:
        lock = claim_new_run(run_dir, by)
    except BaseException:
        if run_dir.is_dir() and created and not any(run_dir.iterdir()):
            run_dir.rmdir()  # the fresh folder new_run_dir made
        raise
    try:
        yield lock
    except BaseException:
        lock.release()
        (lock.run_dir / LOCK).unlink(missing_ok=True)
        if created and not any(lock.run_dir.iterdir()):
            lock.run_dir.rmdir()  # the folder this call made, empty again
        raise


@contextlib.contextmanager
def claimed_run_to_continue(run_dir: str | os.PathLike, by: str) -> Iterator[tuple[RunLock, RunRecord]]:
    """The lock and record of a run that can be continued from its checkpoint, for the block that builds what
    trains it; the lock is released if the block fails. Refuses while another process trains the run, and before
    taking the lock a folder that holds no checkpoint (nothing is written into a folder that is not a run)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a folder; give the folder of a run to continue")
    _refuse_held(run_dir)
    if not (run_dir / CHECKPOINT).is_file():
        raise FileNotFoundError(f"{run_dir} holds no checkpoint to resume from ({CHECKPOINT} is missing)")
    lock = RunLock(run_dir, by)
    try:
        record = read_run(run_dir)
        for name in (CONFIG, CHECKPOINT):
            if name in record.problems:
                raise RunError(f"{run_dir} cannot be continued: {record.problems[name]}")
        yield lock, record
    except BaseException:
        lock.release()
        raise


def discard_unstarted(run_dir: str | os.PathLike) -> None:
    """Removes the files of a run that ended before its first checkpoint (its lock, config, status, metrics, first
    model), so that it can start again, when the folder holds nothing else: a folder with anything more (a
    checkpoint, the user's own files) is left as it is, and a new run then refuses it. Nothing but those files is
    ever deleted."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or lock_holder(run_dir) is not None:
        return
    present = {p.name for p in run_dir.iterdir()}
    if present and present <= {LOCK, CONFIG, STATUS, METRICS, MODEL} and all((run_dir / n).is_file() and not (run_dir / n).is_symlink() for n in present):
        for name in present:
            (run_dir / name).unlink()


def new_run_dir(runs_dir: str | os.PathLike | None, label: str) -> Path:
    """A fresh folder under `runs_dir` (default: ./runs or $VAE_RUNS_DIR) named by the time, `label` and a token;
    RunError saying what to do when the runs folder is a file or cannot be written."""
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    where = f"the runs folder {root}" + (f" (${RUNS_DIR_ENV})" if runs_dir is None and os.environ.get(RUNS_DIR_ENV) else "")
    if root.exists() and not root.is_dir():
        raise RunError(f"{where} is a file, not a folder; give a folder for the runs")
    check_name_lengths(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        run_dir = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe_name(label, 80)}-{secrets.token_hex(2)}"
        run_dir.mkdir()
    except OSError as e:
        raise RunError(f"{where} cannot be written ({e.strerror}); give a folder you may write") from None
    return run_dir


class RunRecorder:
    """Writes a run's files as the trainer's events arrive, a listener on the events: config.json when training
    starts, status.json at each change of state; and metrics.jsonl (rewritten whole, atomically) when the trainer
    asks, before each checkpoint, so that every row a checkpoint covers is on disk before the checkpoint is. A
    resume keeps the rows up to its checkpoint: a kill at any moment leaves no gap in the curve."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.rows: list[dict] = []

    def save_checkpoint(self, packed: bytes, model: tuple[VAE, dict] | None = None) -> None:
        """A checkpoint (`checkpoint.pack`'s bytes) and, with it, the model evaluated and its metadata. The metrics
        go first, then the model, then the checkpoint: whatever a checkpoint covers is on disk before it, so a kill
        between any two writes resumes to a whole curve (a resume drops the rows past its checkpoint, which come
        again)."""
        write_metrics(self.run_dir / METRICS, self.rows)
        if model is not None:
            save_model(model[0], self.run_dir / MODEL, model[1])
        write_atomic(self.run_dir / CHECKPOINT, packed)

    def record(self, event: TrainEvent) -> None:
        if event.kind.logged:
            self.rows.append(event.to_row())
        if event.kind == EventKind.STARTED:
            write_json(self.run_dir / CONFIG, event.run_config)
        if event.kind in (EventKind.STARTED, EventKind.RESUMED, EventKind.PAUSED) or event.kind.ends:
            summary = {k: v for k, v in event.to_row().items() if k in EVALUATION_KEYS}
            summary = {**summary, "samples_per_second": event.samples_per_second} if event.kind.ends else {}
            self._status(RunState.RUNNING.after(event.kind), event, **({} if event.kind == EventKind.FAILED else summary))

    @property
    def last_evaluation(self) -> dict:
        return last_evaluation(self.rows)

    def _status(self, state: RunState, event: TrainEvent, **extra) -> None:
        try:
            write_json(self.run_dir / STATUS, {"state": str(state), "message": event.message,
                                               "samples_evaluated": event.samples_evaluated,
                                               "total_samples": event.total_samples, "updated": time.time(), **extra})
        except OSError:
            if event.kind != EventKind.FAILED:
                raise
            # a failure that could not be written (the disk full, say): the run reads as interrupted, and the
            # trainer's message says why


# The one reader of run folders.

@dataclass
class RunRecord:
    """Everything known about a run folder, read without trusting any one file: `problems` maps each file that
    is damaged (or inconsistent with the others) to what is wrong with it."""
    path: Path
    config: dict | None = None  # config.json as written: train_config, model_config, lr, trial_scores, ...
    status: dict = field(default_factory=dict)
    progress: dict | None = None  # the checkpoint's progress: step, position, seconds, samples_evaluated
    model_metadata: dict | None = None
    meta: dict = field(default_factory=dict)  # what people say of the run: name, note, tags (meta.json)
    metrics: list[dict] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    holder: dict | None = None  # who trains it now
    metrics_read: MetricsRead | None = field(default=None, repr=False)  # for the next read of a growing metrics file

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def title(self) -> str:
        """The name people gave the run, else its folder's."""
        return self.meta.get("name") or self.path.name

    @property
    def train_config(self) -> dict:
        return (self.config or {}).get("train_config", {})

    @property
    def damaged(self) -> bool:
        return bool(self.problems)

    @property
    def state(self) -> RunState:
        if self.holder is not None:
            saved = self.status.get("state")
            return RunState(saved) if saved in (RunState.RUNNING, RunState.PAUSED) else RunState.RUNNING
        if CONFIG in self.problems or STATUS in self.problems or CHECKPOINT in self.problems:
            return RunState.DAMAGED
        try:
            state = RunState(self.status.get("state", "interrupted"))
        except ValueError:
            return RunState.DAMAGED
        return RunState.INTERRUPTED if state.active else state  # said it trained, yet nobody holds the lock

    @property
    def samples_done(self) -> int:
        """Training samples evaluated at the last checkpoint, where a continuation starts."""
        return (self.progress or {}).get("samples_evaluated", 0)

    @property
    def last_evaluation(self) -> dict:
        return last_evaluation(self.metrics)

    def describe_problems(self) -> str:
        return "; ".join(self.problems.values())


def read_run(run_dir: str | os.PathLike, metrics: bool = True, known: RunRecord | None = None) -> RunRecord:
    """Reads a run folder, noting per file what is damaged instead of raising; with `known`, an earlier record of
    the same folder, only the rows its metrics file gained since are parsed."""
    from .config import TrainConfig

    record = RunRecord(Path(run_dir))
    path = record.path
    record.holder = lock_holder(path)
    try:
        record.config = read_json(path / CONFIG)
        if not isinstance(record.config, dict) or not isinstance(record.config.get("train_config"), dict):
            raise ValueError("it holds no train_config")
    except FileNotFoundError:
        record.config = None
        if record.holder is None:
            record.problems[CONFIG] = f"{CONFIG} is missing (the run ended before its first step)"
    except (OSError, ValueError) as e:
        record.config = None
        record.problems[CONFIG] = f"{CONFIG} cannot be read ({e})"
    if record.config is not None:
        try:
            problems = TrainConfig.from_dict(record.train_config).problems(machine=False)
        except (TypeError, ValueError) as e:
            problems = {"config": str(e)}
        if problems:
            record.config = None
            record.problems[CONFIG] = f"{CONFIG} holds settings that cannot be trained ({'; '.join(problems.values())})"
    if (path / STATUS).exists():
        try:
            record.status = read_json(path / STATUS)
            if not isinstance(record.status, dict):
                raise ValueError("not an object")
        except (OSError, ValueError) as e:
            record.status = {}
            record.problems[STATUS] = f"{STATUS} cannot be read ({e})"
    if (path / CHECKPOINT).exists():
        try:
            _, metadata = read_header(path / CHECKPOINT)
            record.progress = checked_progress(metadata.get("progress"), record.train_config)
        except RunError as e:
            record.problems[CHECKPOINT] = str(e)
    if (path / MODEL).exists():
        try:
            _, record.model_metadata = checked_model_config(path / MODEL)
        except RunError as e:
            record.problems[MODEL] = str(e)
    if (path / META).is_file():
        try:
            record.meta = read_json(path / META)
            if not isinstance(record.meta, dict):
                raise ValueError("not an object")
        except (OSError, ValueError):
            record.meta = {}  # only labels: a damaged meta.json hides nothing of the run
    if metrics:
        record.metrics, lost, record.metrics_read = read_metrics_after(path / METRICS, known.metrics_read if known else None)
        if lost:
            record.problems[METRICS] = f"{METRICS}: {lost}"
    return record


class RunIndex:
    """Run records, each read again only when one of its files has changed (their sizes and modification times) or
    while someone may be training it (a trainer's lock can end without a write), and then only the rows its metrics
    file gained since (a run in training adds rows at its end): a summary of thousands of runs without reading every
    folder each time it is asked for. The records it returns are shared: read them, never change them."""

    def __init__(self):
        self._known: dict[tuple[str, bool], tuple[tuple, RunRecord]] = {}
        self._lock = threading.RLock()  # one reader at a time: a page waits for the warm-up instead of doing it again

    @staticmethod
    def _signature(run_dir: Path) -> tuple:
        stats: list[tuple[int, int, int] | None] = []
        for name in (*RUN_FILES, META, LOCK):
            try:
                found = os.stat(run_dir / name)
                stats.append((found.st_mtime_ns, found.st_size, found.st_ino))
            except OSError:
                stats.append(None)
        return tuple(stats)

    def read(self, run_dir: str | os.PathLike, metrics: bool = True) -> RunRecord:
        key = (str(Path(run_dir).resolve()), metrics)
        with self._lock:
            signature = self._signature(Path(run_dir))
            known = self._known.get(key)
            if known is not None and known[0] == signature and known[1].holder is None:  # a held run's holder may end
                return known[1]
            record = read_run(run_dir, metrics, known[1] if known is not None else None)
            self._known[key] = (signature, record)
            return record

    def records(self, runs_dir: str | os.PathLike | None = None, metrics: bool = True) -> list[RunRecord]:
        """The records of `list_runs(runs_dir)`, newest first."""
        with self._lock:
            found = list_runs(runs_dir)
            kept = {(str(p.resolve()), metrics) for p in found}
            for key in [k for k in self._known if k[1] == metrics and k not in kept]:  # deleted since: forgotten
                del self._known[key]
            return [self.read(run_dir, metrics) for run_dir in found]

    def warm(self, runs_dir: str | os.PathLike | None = None) -> threading.Thread:
        """Reads every run of `runs_dir` in a thread of its own, with and without metrics, so that the first page
        to ask (the app's first click after it starts) finds them read, or waits only for the rest. What cannot be
        read is left to that page, which says why."""
        def read_all() -> None:
            with contextlib.suppress(Exception):  # the page's own read reports it
                for metrics in (False, True):
                    self.records(runs_dir, metrics)
        thread = threading.Thread(target=read_all, name="run-index-warm-up", daemon=True)
        thread.start()
        return thread


def checked_progress(progress, train_config: dict) -> dict:
    """A checkpoint's progress fields, once they agree with each other and with the run's config."""
    if not isinstance(progress, dict):
        raise RunError(f"{CHECKPOINT} says nothing of its progress")
    step, samples, seconds = progress.get("step"), progress.get("samples_evaluated"), progress.get("seconds")
    M, budget = train_config.get("batch_size"), train_config.get("samples")
    if not all(isinstance(v, int) and v >= 0 for v in (step, samples)) or not isinstance(seconds, (int, float)) \
            or not math.isfinite(seconds) or seconds < 0:
        raise RunError(f"{CHECKPOINT} has malformed progress {progress}")
    assert isinstance(step, int) and isinstance(samples, int)  # checked just above
    if isinstance(M, int) and samples != step * M:
        raise RunError(f"{CHECKPOINT} claims {samples:,} samples in {step:,} steps of M = {M}")
    if isinstance(budget, int) and isinstance(M, int) and step > math.ceil(budget / M):
        raise RunError(f"{CHECKPOINT} claims {samples:,} samples, beyond the run's budget of {budget:,}")
    return progress


SWEEP_FILE = "sweep.json"  # marks a sweep's folder, whose run folders are its trials (vae_core/sweep.py)


def _is_run(folder: Path) -> bool:
    return folder.is_dir() and any((folder / name).exists() for name in (*RUN_FILES, LOCK))


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[Path]:
    """Run folders under `runs_dir`, and those of the sweeps under it (newest first): those holding any run file,
    damaged ones included."""
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        if (folder / SWEEP_FILE).is_file():
            found += [p for p in folder.iterdir() if _is_run(p)]
        elif _is_run(folder):
            found.append(folder)
    return sorted(found, key=lambda p: (p.parent.name if (p.parent / SWEEP_FILE).is_file() else p.name, p.name),
                  reverse=True)


def sweep_of(run_dir: str | os.PathLike) -> str | None:
    """The name of the sweep a run belongs to, if any."""
    parent = Path(run_dir).parent
    return parent.name if (parent / SWEEP_FILE).is_file() else None


def label(run_dir: str | os.PathLike, name: str | None = None, note: str | None = None,
          tags: list[str] | None = None) -> dict:
    """Names a run, or notes or tags it (meta.json, beside the files the trainer writes): what is given replaces
    what was there. Returns the run's labels."""
    path = Path(run_dir) / META
    for what, text, most in [("the name", name, LABEL_LIMITS["name"]), ("the note", note, LABEL_LIMITS["note"]),
                             *(("a tag", t, LABEL_LIMITS["tag"]) for t in tags or [])]:
        if text is not None and len(text.strip()) > most:
            raise ValueError(f"{what} may hold at most {most:,} characters, got {len(text.strip()):,}")
    if tags is not None and len(tags) > LABEL_LIMITS["tags"]:
        raise ValueError(f"a run may have at most {LABEL_LIMITS['tags']} tags, got {len(tags)}")
    meta = read_run(run_dir, metrics=False).meta
    for key, value in (("name", name), ("note", note), ("tags", tags)):
        if value is not None:
            meta[key] = value.strip() if isinstance(value, str) else sorted({t.strip() for t in value if t.strip()})
    write_json(path, meta)
    return meta


def delete(run_dir: str | os.PathLike) -> Path:
    """Moves a run that nobody trains to the runs folder's trash, whence `restore` brings it back. Each deletion
    has a trash entry of its own (runs of the same name deleted in the same second included), beside a note of
    where it came from."""
    run_dir = Path(run_dir)
    holder = lock_holder(run_dir)
    if holder is not None:
        raise RunError(f"{run_dir.name} is being trained by {describe_holder(holder)}; stop it before deleting it")
    root = run_dir.parent.parent if sweep_of(run_dir) else run_dir.parent
    (root / TRASH).mkdir(parents=True, exist_ok=True)
    stamp, name = time.strftime(TRASH_STAMP), safe_name(run_dir.name, NAME_LIMIT - 24)
    for number in itertools.count(1):
        trash = root / TRASH / (f"{stamp}-{name}" if number == 1 else f"{stamp}.{number}-{name}")
        try:  # the note is made exclusively: a second deletion in the same second takes the next number
            with open(trash.parent / f"{trash.name}.from", "x") as note:
                note.write(str(run_dir.resolve()))  # where it goes back to
        except FileExistsError:
            continue
        if not trash.exists():
            break
        (trash.parent / f"{trash.name}.from").unlink()
    try:
        os.replace(run_dir, trash)
    except OSError:
        (trash.parent / f"{trash.name}.from").unlink(missing_ok=True)
        raise
    return trash


def trashed(runs_dir: str | os.PathLike | None = None) -> list[Path]:
    """Deleted runs that can be restored, newest first."""
    root = (Path(runs_dir) if runs_dir is not None else default_runs_dir()) / TRASH
    return sorted((p for p in root.iterdir() if p.is_dir()), reverse=True) if root.is_dir() else []


_TRASH_NAME = re.compile(r"^\d{8}-\d{6}(?:\.\d+)?-(.+)$")  # a trash entry's name: the stamp, a number, the run's


def restore(trashed_run: str | os.PathLike) -> Path:
    """Puts a deleted run back where it was; refuses when something else has taken its place. A note of origin that
    points outside the runs folder the trash belongs to is not followed: the run goes back under its own name."""
    trashed_run = Path(trashed_run)
    root = trashed_run.parent.parent
    origin_file = trashed_run.parent / f"{trashed_run.name}.from"
    origin = None
    if origin_file.is_file():
        origin = Path(read_bytes(origin_file, 4096).decode(errors="replace").strip())
        if not origin.is_absolute() or not origin.resolve().is_relative_to(root.resolve()):
            origin = None
    if origin is None:  # where it was is lost: back into the runs folder under its own name, the deletion's time taken off
        match = _TRASH_NAME.match(trashed_run.name)
        origin = root / (match.group(1) if match else trashed_run.name)
    if origin.exists():
        raise RunError(f"{origin} exists again; rename or delete it before restoring this run")
    origin.parent.mkdir(parents=True, exist_ok=True)
    os.replace(trashed_run, origin)
    origin_file.unlink(missing_ok=True)
    return origin


def checkpoint_samples(run_dir: str | os.PathLike) -> int:
    """Training samples evaluated at the run's last checkpoint, where a resumed run continues; 0 without one."""
    return read_run(run_dir, metrics=False).samples_done


def check_continue_budget(run_dir: str | os.PathLike, samples: int) -> int:
    """`samples` if it is above what the run's last checkpoint has evaluated, where a continuation starts;
    otherwise ValueError saying so. The CLI's --resume and the Runs page both ask here."""
    done = checkpoint_samples(run_dir)
    if samples <= done:
        raise ValueError(f"{Path(run_dir).name} has already evaluated {done:,} samples; "
                         f"give a larger budget than that to continue it")
    return samples
