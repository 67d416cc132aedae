"""Re-score every stored profile with one model: the batch path behind `streamer score-batch`.

Profiles are read with SCAN ``profile:*`` in pages (``HGETALL`` pipelined per page), scored
with one ``predict_proba`` call per page and written back with one Lua call per page.

Scores and the stream
---------------------
A batch score is stamped with the profile's own ``last_event_ts`` as its
``scored_event_ts``: it claims to reflect exactly the event data it read, never newer. The
write goes through the same guard as the stream's (stored only if that timestamp is not
older than the stored ``scored_event_ts``), so:

- a stream score for a later event, written while the batch runs, is never overwritten,
  and the batch score is skipped (counted as ``skipped``);
- a stream score for an event the batch has not seen yet replaces the batch score, as it
  should: it has more data;
- on a tie (same event data) the batch wins, which is the point of a re-score after a
  promotion. A worker still on the old champion may then re-score that customer with the
  old model on its next event; that score is newer data, and it is replaced once the
  worker swaps (within ``STREAMER_MODEL_POLL``).

Profiles that vanish between SCAN and the write are not recreated.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from tqdm import tqdm

from models.features import feature_matrix
from models.registry import LoadedModel
from streamer.profiles import PROFILE_PREFIX
from topics.events import utc_now_ms

PROGRESS_KEY = "score-batch:progress"
EXPORT_HEADER = ("customer_id", "churn_score", "model_version")
DEFAULT_PAGE_SIZE = 1000

# KEYS[1]: the progress hash. ARGV: cursor, model_version, scored_at, export_offset, then
# 3 per profile: customer_id, churn_score, event_ts. Returns profiles written.
_WRITE_PAGE = """
local written = 0
for b = 5, #ARGV, 3 do
  local key = 'profile:' .. ARGV[b]
  if redis.call('EXISTS', key) == 1 then
    local newest = tonumber(redis.call('HGET', key, 'scored_event_ts') or '0') or 0
    if tonumber(ARGV[b + 2]) >= newest then
      redis.call('HSET', key, 'churn_score', ARGV[b + 1], 'model_version', ARGV[2],
                 'scored_at', ARGV[3], 'scored_event_ts', ARGV[b + 2])
      written = written + 1
    end
  end
end
local scored = (#ARGV - 4) / 3
redis.call('HSET', KEYS[1], 'cursor', ARGV[1], 'export_offset', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'scored', scored)
redis.call('HINCRBY', KEYS[1], 'written', written)
return written
"""


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
        """Profiles whose stored score came from newer event data (or that vanished)."""
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


def _event_ts(profile: dict[str, str]) -> int:
    try:
        return max(0, int(float(profile.get("last_event_ts") or 0)))
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
        offset = int(stored.get("export_offset") or 0)
        export_intact = export is None or (export.is_file() and export.stat().st_size >= offset)
        if same_run and export_intact:
            return (
                _Progress(
                    cursor=int(stored.get("cursor") or 0),
                    scored=int(stored.get("scored") or 0),
                    written=int(stored.get("written") or 0),
                    export_offset=offset,
                    resumed=True,
                ),
                None,
            )
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
            cursor, keys = client.scan(cursor=cursor, match=PROFILE_PREFIX + "*", count=page_size)
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            replies: list[Any] = pipe.execute(raise_on_error=False) if keys else []
            ids: list[str] = []
            profiles: list[dict[str, str]] = []
            for key, profile in zip(keys, replies, strict=True):
                if isinstance(profile, dict) and profile:  # gone, or not a hash: skip
                    ids.append(str(key)[len(PROFILE_PREFIX) :])
                    profiles.append(profile)
            args: list[str | int] = []
            if profiles:
                scores = model.score(feature_matrix(profiles)).tolist()
                ts = [_event_ts(profile) for profile in profiles]
                for customer_id, score, event_ts in zip(ids, scores, ts, strict=True):
                    args += [customer_id, repr(score), event_ts]
                if export_file is not None:
                    export_file.write(
                        _csv_bytes(
                            [
                                (cid, repr(s), model.version)
                                for cid, s in zip(ids, scores, strict=True)
                            ]
                        )
                    )
                    export_file.flush()
            offset = export_file.tell() if export_file is not None else 0
            written = int(
                write_page(
                    keys=[PROGRESS_KEY],
                    args=[cursor, model.version, utc_now_ms(), offset, *args],
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
