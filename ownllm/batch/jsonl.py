"""The batch files: the input checked whole before anything is sent, and the two result files
(output and errors) that are at once the results and the record of what is done.

Why no separate journal: a result line is written with one `write()` on a file opened with
O_APPEND, so once `write()` returns the line is in the kernel's page cache and survives the
process being killed (SIGKILL included); a second file recording "done" would have to be kept
in step with the first, and the moment between the two writes is exactly where a crash loses
or doubles a request. The result files alone are the truth: on start, every complete line
names a custom_id that is done, and an unterminated last line (a write cut short, or a power
loss before the page cache reached the disk) is cut off and that request sent again.
`fsync` runs at most once per FSYNC_INTERVAL_S and at close, so an operating-system crash can
lose at most that last second of lines, which are then sent again: never written twice.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ownllm.settings import DuplicateKeyError, unique_json_object

# The OpenAI Batch API's request-input object: {custom_id, method, url, body}, method "POST"
# (https://platform.openai.com/docs/api-reference/batch/request-input). Of its endpoints, the ones
# ownllm's API serves (lambda/forwarder/app.py ALLOWED; lambda/README.md routes).
SUPPORTED_URLS = ("/v1/chat/completions", "/v1/completions")
METHOD = "POST"
MAX_PROBLEMS_SHOWN = 20  # a file with 10,000 bad lines needs the first few, then a count
FSYNC_INTERVAL_S = 1.0


class BatchFileError(Exception):
    """A batch file that cannot be used; `problems` are one line each, shown as they are."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class BatchRequest:
    line: int  # 1-based line number in the input, for messages
    custom_id: str
    url: str  # one of SUPPORTED_URLS
    body: dict[str, object]

    def payload(self) -> bytes:
        """The body as `batch run` sends it: the bytes the API's size limit counts."""
        return json.dumps(self.body, separators=(",", ":")).encode()


def _describe(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _no_constant(name: str) -> object:
    """json.loads reads NaN and Infinity, which JSON (RFC 8259) has not: refuse them as the API would."""
    raise ValueError(f"{name} is not a JSON number; give a finite number")


def _finite_float(text: str) -> float:
    """json.loads turns 1e400 into inf, which json.dumps then sends as Infinity: refuse it here."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is too large for a JSON number; give a finite number")
    return value


def _check_line(number: int, text: str) -> tuple[BatchRequest | None, list[str]]:
    where = f"line {number}"
    try:
        item = json.loads(
            text, parse_constant=_no_constant, parse_float=_finite_float, object_pairs_hook=unique_json_object
        )
    except json.JSONDecodeError as exc:
        return None, [f"{where}: not valid JSON ({exc.msg} at column {exc.colno})"]
    except DuplicateKeyError as exc:
        return None, [
            f"{where}: key {str(exc)!r} appears twice in one object; JSON readers keep only the last, so say it once"
        ]
    except ValueError as exc:
        return None, [f"{where}: not valid JSON ({exc})"]
    if not isinstance(item, dict):
        return None, [f"{where}: expected a JSON object {{custom_id, method, url, body}}, got {_describe(item)}"]
    problems = []
    custom_id = item.get("custom_id")
    if "custom_id" not in item:
        problems.append(f"{where}: custom_id is missing; every request needs a unique string custom_id")
    elif not isinstance(custom_id, str) or not custom_id:
        problems.append(f"{where}: custom_id {_describe(custom_id)} must be a non-empty string")
    method = item.get("method")
    if method != METHOD:
        shown = "missing" if "method" not in item else _describe(method)
        problems.append(f"{where}: method is {shown}; only {METHOD!r} is accepted")
    url = item.get("url")
    if url not in SUPPORTED_URLS:
        shown = "missing" if "url" not in item else _describe(url)
        problems.append(f"{where}: url is {shown}; accepted: {', '.join(SUPPORTED_URLS)}")
    body = item.get("body")
    if not isinstance(body, dict):
        shown = "missing" if "body" not in item else _describe(body)
        problems.append(f"{where}: body is {shown}; it must be a JSON object (the request body for url)")
    elif body.get("stream") is True:
        problems.append(f"{where}: body.stream is true; a batch takes whole JSON answers, remove stream")
    if problems or not isinstance(custom_id, str) or not isinstance(url, str) or not isinstance(body, dict):
        return None, problems
    return BatchRequest(number, custom_id, url, body), []


def load_requests(path: Path) -> list[BatchRequest]:
    """Every request in the input, or BatchFileError naming every bad line; blank lines are skipped."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BatchFileError([f"cannot read the input {path}: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")  # a byte order mark, as Windows editors write
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        raise BatchFileError([f"{path} line {bad_line}: not UTF-8 text (byte {exc.start})"]) from None
    requests: list[BatchRequest] = []
    problems: list[str] = []
    first_seen: dict[str, int] = {}
    # Lines end at "\n" (and "\r\n"); str.splitlines would also split at U+2028 and other separators
    # that JSON allows raw inside a string.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        request, found = _check_line(number, line.removesuffix("\r"))
        problems.extend(found)
        if request is None:
            continue
        if request.custom_id in first_seen:
            problems.append(
                f"line {number}: custom_id {request.custom_id!r} repeats line {first_seen[request.custom_id]}; "
                "custom_ids must be unique"
            )
            continue
        first_seen[request.custom_id] = number
        requests.append(request)
    if problems:
        raise BatchFileError([f"{path} {p}" for p in problems])
    if not requests:
        raise BatchFileError([f"{path}: no requests (the file is empty)"])
    return requests


@dataclass
class ResultFileState:
    """What a result file says is done, and how many bytes of it are whole lines."""

    done: dict[str, int] = field(default_factory=dict)  # custom_id -> line number
    whole_bytes: int = 0  # the length once an unterminated last line is cut off
    partial_bytes: int = 0  # the length of that unterminated last line (0: none)


def read_result_file(path: Path) -> ResultFileState:
    """Scan an existing output or errors file; BatchFileError if a whole line is not a result line."""
    state = ResultFileState()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return state
    except OSError as exc:
        raise BatchFileError([f"cannot read {path}: {exc.strerror or exc}"]) from None
    end = raw.rfind(b"\n") + 1  # 0 when there is no newline at all
    state.whole_bytes, state.partial_bytes = end, len(raw) - end
    for number, line in enumerate(raw[:end].splitlines(), start=1):
        try:
            item = json.loads(line)
        except ValueError:
            item = None
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        if not isinstance(custom_id, str):
            raise BatchFileError(
                [f"{path} line {number}: not a batch result line (no custom_id); is this the right file?"]
            )
        if custom_id in state.done:
            raise BatchFileError(
                [f"{path} line {number}: custom_id {custom_id!r} already on line {state.done[custom_id]}"]
            )
        state.done[custom_id] = number
    return state


def check_results_match(
    requests: Iterable[BatchRequest],
    output: Path,
    output_state: ResultFileState,
    errors: Path,
    errors_state: ResultFileState,
) -> None:
    """Refuse result files made from another input, or a custom_id in both files."""
    known = {r.custom_id for r in requests}
    problems = []
    for path, state in ((output, output_state), (errors, errors_state)):
        strangers = [cid for cid in state.done if cid not in known]
        if strangers:
            problems.append(
                f"{path} holds {len(strangers)} custom_id(s) that are not in the input (first: {strangers[0]!r}, "
                f"line {state.done[strangers[0]]}): it was made from a different input; "
                "give another --output/--errors or move that file away"
            )
    both = sorted(set(output_state.done) & set(errors_state.done))
    if both:
        problems.append(
            f"custom_id {both[0]!r} is in both {output} (line {output_state.done[both[0]]}) and {errors} "
            f"(line {errors_state.done[both[0]]}); each request must have one result"
        )
    if problems:
        raise BatchFileError(problems)


class ResultWriter:
    """An append-only JSONL file: one write() per line, fsync at most every FSYNC_INTERVAL_S.

    Opening takes an exclusive lock (flock) for the writer's lifetime, so a second run on the
    same file is refused instead of writing a second result for the same request; only then
    is the file read (`state`), so what it says is done cannot change underneath.
    """

    def __init__(self, path: Path):
        self.path = path
        self.created = not path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = -1
            raise BatchFileError(
                [f"{path} is being written by another ownllm batch run; let it finish or give another file"]
            ) from None
        self._synced_at = time.monotonic()
        self._dirty = False

    def state(self) -> ResultFileState:
        return read_result_file(self.path)

    def repair(self, state: ResultFileState) -> None:
        """Cut off the unterminated tail of a write cut short (state from `state()`)."""
        if state.partial_bytes:
            os.ftruncate(self._fd, state.whole_bytes)
            os.fsync(self._fd)

    def append(self, record: dict[str, object]) -> None:
        data = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        view = memoryview(data)
        while view:  # a regular file takes it all in one call; a full disk raises OSError
            view = view[os.write(self._fd, view) :]
        self._dirty = True
        if time.monotonic() - self._synced_at >= FSYNC_INTERVAL_S:
            self.sync()

    def sync(self) -> None:
        if self._dirty:
            os.fsync(self._fd)
            self._dirty = False
        self._synced_at = time.monotonic()

    def close(self, *, remove_if_created: bool = False) -> None:
        """Sync and unlock; `remove_if_created` takes back a file this run made and never wrote."""
        if self._fd < 0:
            return
        self.sync()
        if remove_if_created and self.created and os.fstat(self._fd).st_size == 0:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = -1
