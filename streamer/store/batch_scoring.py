"""Re-score every stored profile with one model: the batch path behind `streamer score-batch`.

Profiles are read in SCAN pages of ``profile:*`` (one Lua call per page), scored
with one ``predict_proba`` call per page and written back with one Lua call per page.

Scores and the stream
---------------------
A batch score is stamped with the profile's own update sequence (``event_seq``, bumped
by every event the stream counts) as its ``scored_seq``: it claims to reflect exactly the
profile state it read, never newer. The write goes through the same guard as the stream's
(stored only if that sequence is not older than the stored ``scored_seq``; missing counts
as 0), whatever the events' timestamps, so:

- a stream score of a newer profile state (an event counted after the batch read the
  profile, however old its timestamp), written while the batch runs, is never
  overwritten, and the batch score is skipped (counted as ``skipped``);
- a stream score of a state the batch has not seen yet replaces the batch score, as it
  should: it has more data;
- on a tie (same profile state) the batch wins, which is the point of a re-score after a
  promotion. A worker still on the old champion may then re-score that customer with the
  old model on its next event; that score is newer data, and it is replaced once the
  worker swaps (within ``STREAMER_MODEL_POLL``).

The profile's ``last_event_ts`` is still written as the score's ``scored_event_ts``, for
information only. Profiles that vanish between SCAN and the write are not recreated.

Resuming
--------
Progress lives in the Redis hash ``score-batch:progress`` (SCAN cursor, counts, model
version, export file and its byte length). The page's score writes and its checkpoint
happen in the same Lua call, so an interruption at any point loses at most the page in
hand, which the next run redoes; the export file is cut back to its checkpointed length
first, so it holds each page exactly once. A run resumes only with the same model version
and export file (else it starts over and says so); the key is deleted when a run completes.
SCAN returns every key that exists for the whole scan at least once; keys created or
deleted during the scan may or may not be visited. Two concurrent runs on one Redis
database would share the progress key: run one at a time.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis
from tqdm import tqdm

from models.features import FEATURE_INPUTS, feature_matrix
from models.registry import LoadedModel
from streamer.store.profiles import EVENT_SEQ, LAST_EVENT_TS, PROFILE_PREFIX, profile_seq
from topics.events import utc_now_ms

PROGRESS_KEY = "score-batch:progress"
EXPORT_HEADER = ("customer_id", "churn_score", "model_version")
DEFAULT_PAGE_SIZE = 1000

# Both scripts move a whole page as one JSON string: parsing one reply element per key and
# field in Python, not Redis or the model, is what bounds a batch scorer's rate.

# ARGV: cursor, page size, key pattern, then the fields to read. Returns JSON
# [next cursor, keys, values]: per key its field values (false where absent), or 0 for a
# key that is gone or not a hash.
_READ_PAGE = """
local page = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[3], 'COUNT', ARGV[2])
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
local values = {}
for i, key in ipairs(page[2]) do
  if redis.call('TYPE', key)['ok'] == 'hash' then
    values[i] = redis.call('HMGET', key, unpack(fields))
  else
    values[i] = 0
  end
end
return cjson.encode({page[1], page[2], values})
"""

# KEYS[1]: the progress hash. ARGV: cursor, model_version, scored_at, export_offset and a
# JSON list of [customer_id, churn_score, event_ts, seq] (strings: Lua numbers would round
# the score). Applies the stream's guard (by update sequence, as write_scores.lua), then
# checkpoints; returns profiles written.
_WRITE_PAGE = """
local written = 0
local scores = cjson.decode(ARGV[5])
for _, item in ipairs(scores) do
  local key = 'profile:' .. item[1]
  if redis.call('EXISTS', key) == 1 then
    local newest = tonumber(redis.call('HGET', key, 'scored_seq') or '0') or 0
    if tonumber(item[4]) >= newest then
      redis.call('HSET', key, 'churn_score', item[2], 'model_version', ARGV[2],
                 'scored_at', ARGV[3], 'scored_event_ts', item[3], 'scored_seq', item[4])
      written = written + 1
    end
  end
end
redis.call('HSET', KEYS[1], 'cursor', ARGV[1], 'export_offset', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'scored', #scores)
redis.call('HINCRBY', KEYS[1], 'written', written)
return written
"""

READ_FIELDS: tuple[str, ...] = (*FEATURE_INPUTS, LAST_EVENT_TS, EVENT_SEQ)


class BatchScoringError(Exception):
    """Batch scoring cannot run; the message is one line."""


@dataclass(frozen=True)
class BatchResult:
    """What a (possibly resumed) run did; totals include the resumed part."""

    model_version: str
    scored: int
    written: int
    scored_this_run: int
    elapsed_s: float
    resumed: bool

    @property
    def skipped(self) -> int:
        """Profiles whose stored score came from a newer profile state (or that vanished)."""
        return self.scored - self.written

    @property
    def rate(self) -> float:
        """Profiles scored per second in this run."""
        return self.scored_this_run / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class _Progress:
    cursor: int = 0
    scored: int = 0
    written: int = 0
    export_offset: int = 0
    resumed: bool = False


def _read_page(
    read_page: Any, cursor: int, page_size: int
) -> tuple[int, list[str], list[dict[str, object]]]:
    """The next cursor, and the customer ids and fields of the page's profiles."""
    next_cursor, keys, values = orjson.loads(
        read_page(args=[cursor, page_size, PROFILE_PREFIX + "*", *READ_FIELDS])
    )
    ids: list[str] = []
    profiles: list[dict[str, object]] = []
    # cjson writes an empty Lua table as {}, not [].
    for key, fields in zip(keys or [], values or [], strict=True):
        if fields:
            ids.append(key[len(PROFILE_PREFIX) :])
            profiles.append(
                {name: value for name, value in zip(READ_FIELDS, fields, strict=True) if value}
            )
    return int(next_cursor), ids, profiles


def _event_ts(profile: Mapping[str, object]) -> int:
    try:
        return max(0, int(float(profile.get(LAST_EVENT_TS) or 0)))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return 0


def _csv_bytes(rows: list[tuple[str, str, str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def _start(
    client: redis.Redis, model_version: str, export: Path | None, restart: bool
) -> tuple[_Progress, str | None]:
    """The progress to start from and, if stored progress was discarded, why."""
    export_name = str(export.resolve()) if export else ""
    stored: dict[str, str] = client.hgetall(PROGRESS_KEY)  # type: ignore[assignment]
    note = None
    if stored and not restart:
        same_run = (
            stored.get("model_version") == model_version and stored.get("export") == export_name
        )
        try:
            resumed = _Progress(
                cursor=int(stored.get("cursor") or 0),
                scored=int(stored.get("scored") or 0),
                written=int(stored.get("written") or 0),
                export_offset=int(stored.get("export_offset") or 0),
                resumed=True,
            )
        except ValueError:  # edited by hand: not resumable
            same_run = False
        else:
            offset = resumed.export_offset
            if export is not None and not (export.is_file() and export.stat().st_size >= offset):
                same_run = False  # the export file is gone or shorter than checkpointed
        if same_run:
            return resumed, None
        was = stored.get("export") or "no export"
        note = (
            f"discarding unfinished run of {stored.get('model_version')} ({was}, "
            f"{stored.get('scored', 0)} scored): it does not match this run; starting over"
        )
    client.delete(PROGRESS_KEY)
    client.hset(
        PROGRESS_KEY,
        mapping={
            "cursor": 0,
            "model_version": model_version,
            "export": export_name,
            "export_offset": 0,
            "scored": 0,
            "written": 0,
            "started_at": utc_now_ms(),
        },
    )
    return _Progress(), note


def count_profiles(client: redis.Redis) -> int:
    """Profiles in the database (a keys-only SCAN: cheap next to scoring them)."""
    return sum(1 for _ in client.scan_iter(match=PROFILE_PREFIX + "*", count=10_000))


def score_profiles(
    client: redis.Redis,
    model: LoadedModel,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    export: Path | None = None,
    restart: bool = False,
    progress: bool | None = None,
    on_page: Callable[[int], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> BatchResult:
    """Score every ``profile:*`` hash with ``model``, resuming stored progress if it matches.

    ``client`` must decode responses. ``progress`` None shows the bar only on a terminal.
    ``on_page`` is called with the running total after each checkpoint; ``notify`` gets
    one-line notes (resumed, discarded progress).
    """
    if page_size < 1:
        raise BatchScoringError(f"page size must be >= 1, got {page_size}")
    state, note = _start(client, model.version, export, restart)
    say = notify or (lambda _message: None)
    if note:
        say(note)
    if state.resumed:
        say(f"resuming: {state.scored} profiles already scored with {model.version}")
    write_page = client.register_script(_WRITE_PAGE)
    read_page = client.register_script(_READ_PAGE)
    export_file = _open_export(export, state) if export else None
    if export_file is not None and not state.resumed:
        # The header is part of the checkpointed length, so a resume never cuts it off.
        client.hset(PROGRESS_KEY, "export_offset", export_file.tell())
    total = count_profiles(client)
    bar = tqdm(
        total=max(total, state.scored),
        initial=state.scored,
        unit="profile",
        unit_scale=True,
        disable=None if progress is None else not progress,
        desc=f"scoring with {model.version}",
    )
    started = time.perf_counter()
    scored_this_run = 0
    cursor = state.cursor
    try:
        while True:
            cursor, ids, profiles = _read_page(read_page, cursor, page_size)
            payload = b"[]"
            if profiles:
                scores = model.score(feature_matrix(profiles)).tolist()
                texts = [repr(score) for score in scores]
                ts = [str(_event_ts(profile)) for profile in profiles]
                seqs = [str(profile_seq(profile)) for profile in profiles]
                payload = orjson.dumps(list(zip(ids, texts, ts, seqs, strict=True)))
                if export_file is not None:
                    export_file.write(
                        _csv_bytes(
                            [(cid, t, model.version) for cid, t in zip(ids, texts, strict=True)]
                        )
                    )
                    export_file.flush()
            offset = export_file.tell() if export_file is not None else 0
            written = int(
                write_page(
                    keys=[PROGRESS_KEY],
                    args=[cursor, model.version, utc_now_ms(), offset, payload],
                )
            )
            state.scored += len(profiles)
            state.written += written
            scored_this_run += len(profiles)
            bar.update(len(profiles))
            if on_page is not None:
                on_page(state.scored)
            if cursor == 0:
                break
    finally:
        bar.close()
        if export_file is not None:
            export_file.close()
    elapsed = time.perf_counter() - started
    client.delete(PROGRESS_KEY)
    return BatchResult(
        model_version=model.version,
        scored=state.scored,
        written=state.written,
        scored_this_run=scored_this_run,
        elapsed_s=elapsed,
        resumed=state.resumed,
    )


def _open_export(path: Path, state: _Progress) -> io.BufferedRandom:
    if state.resumed:
        handle = path.open("r+b")
        handle.truncate(state.export_offset)
        handle.seek(state.export_offset)
        return handle
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("w+b")
    handle.write(_csv_bytes([EXPORT_HEADER]))
    handle.flush()
    return handle


def progress_summary(client: redis.Redis) -> dict[str, str]:
    """The stored progress of an unfinished run (empty if none)."""
    stored: dict[str, str] = client.hgetall(PROGRESS_KEY)  # type: ignore[assignment]
    return stored
