"""Omi's records as its integration API returns them: conversations (each flavor's, and the wearable's) and memories.

FastAPI (§1.2, §3.1): `created_at = started_at`, the whole request in `external_data` (text included), no transcript
segments, `discarded` when the summary has no title. API core (§9.6): `created_at` = import time, `external_data` =
`{"integration": {…}}` without the text, the text in one `SPEAKER_00` segment, nothing discarded. Memories (§1.3,
§3.2, §9.2): `reviewed: true`, `scoring` = manual, then explicit (999) before extracted (998), then creation time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.sandbox import derive
from bot.sandbox.exceptions import OmiError, bad_date_detail
from bot.sandbox.store import SandboxStore, StoredMemory

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_DURATION = timedelta(seconds=300)
SPEAKER = "SPEAKER_00"
SOURCE_IMPORT = "external_integration"
SOURCE_WEARABLE = "omi"

#: The category part of a memory's `scoring`: explicit (system) before extracted (interesting) (§9.2).
CATEGORY_BOOST = {"system": 999, "manual": 999, "interesting": 998}

Record = dict[str, Any]


def iso_utc(moment: datetime) -> str:
    """Omi's datetime rendering: ISO-8601 in UTC ending in `Z` (microseconds only when non-zero)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def micros(moment: datetime) -> int:
    return (as_utc(moment) - EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


# --- reading ---------------------------------------------------------------------------------------------------


def parse_date_filter(value: str | None, *, end: bool) -> datetime | None:
    """Omi's start_date/end_date parsing: 10 characters → that whole UTC day, else `fromisoformat` (Z allowed).

    Raises ValueError on anything else.
    """
    if not value:
        return None
    if len(value) == 10:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        return day + timedelta(days=1, microseconds=-1) if end else day
    return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


def date_bounds(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """Both filters parsed, or Omi's 400 naming the first bad one."""
    try:
        start_at = parse_date_filter(start, end=False)
    except ValueError:
        raise OmiError(400, bad_date_detail("start_date")) from None
    try:
        end_at = parse_date_filter(end, end=True)
    except ValueError:
        raise OmiError(400, bad_date_detail("end_date")) from None
    return start_at, end_at


def conversation_text(record: Record) -> str:
    """The text a conversation was made from, whatever the flavor: `external_data.text` on FastAPI, else the
    transcript segments' text (API core's one `SPEAKER_00` segment, the wearable's lines) joined by newlines."""
    external = record.get("external_data") or {}
    if isinstance(external.get("text"), str):
        return external["text"]
    return "\n".join(str(segment.get("text", "")) for segment in record.get("transcript_segments") or [])


def for_read(record: Record, max_transcript_segments: int) -> Record:
    """The record as a read returns it: at most `max_transcript_segments` segments (-1: all)."""
    segments = record.get("transcript_segments")
    if max_transcript_segments != -1 and segments and len(segments) > max_transcript_segments:
        return record | {"transcript_segments": segments[:max_transcript_segments]}
    return record


def matches(record: Record, words: list[str]) -> bool:
    """Search: every word in the title, overview or text (case-insensitive)."""
    if not words:
        return True
    structured = record.get("structured") or {}
    parts = (structured.get("title"), structured.get("overview"), conversation_text(record))
    haystack = " ".join(str(part or "") for part in parts).lower()
    return all(word in haystack for word in words)


# --- conversations ---------------------------------------------------------------------------------------------


def _structured(text: str, *, action_items: bool) -> tuple[dict[str, Any], bool]:
    structure = derive.structure(text)
    items = derive.action_items(text) if action_items and not structure.discarded else []
    structured = {
        "title": structure.title,
        "overview": structure.overview,
        "emoji": structure.emoji,
        "category": structure.category,
        "action_items": [{"description": item, "completed": False, "exported": False} for item in items],
        "events": [],
    }
    return structured, structure.discarded


def _text_source(payload: Any) -> str:
    value = payload.text_source
    return str(getattr(value, "value", value))


def _times(payload: Any, now: datetime) -> tuple[datetime, datetime]:
    started = as_utc(payload.started_at) if payload.started_at else now
    finished = as_utc(payload.finished_at) if payload.finished_at else started + DEFAULT_DURATION
    return started, finished


def fastapi_conversation(app_id: str, payload: Any, now: datetime) -> tuple[int, Record]:
    """(created_us, ConversationItem) as FastAPI's `process_conversation` stores an import."""
    started, finished = _times(payload, now)
    language = payload.language or "en"
    geolocation = payload.geolocation
    text_source = _text_source(payload)
    external_data = {
        "started_at": iso_utc(started),
        "finished_at": iso_utc(finished),
        "text": payload.text,
        "text_source": text_source,
        "text_source_spec": payload.text_source_spec,
        "geolocation": geolocation.model_dump() if geolocation else None,
        "source": SOURCE_IMPORT,
        "language": language,
        "app_id": app_id,
        "client_device_id": payload.client_device_id,
        "client_platform": payload.client_platform,
    }
    structured, discarded = _structured(payload.text, action_items=text_source == "audio_transcript")
    item: Record = {
        "id": str(uuid.uuid4()),
        "created_at": iso_utc(started),
        "started_at": iso_utc(started),
        "finished_at": iso_utc(finished),
        "source": SOURCE_IMPORT,
        "structured": structured,
        "transcript_segments": [],
        "discarded": discarded,
        "app_id": app_id,
        "language": language,
        "external_data": external_data,
    }
    if geolocation is not None:
        item["geolocation"] = geolocation.model_dump(exclude_none=True)
    item["status"] = "completed"
    return micros(started), item


def api_core_conversation(app_id: str, payload: Any, now: datetime) -> tuple[int, Record]:
    """(created_us, ConversationItem) as API core stores an import: no text in `external_data`, one segment."""
    started, finished = _times(payload, now)
    language = payload.language or "en"
    integration = {
        "app_id": app_id,
        "text_source": _text_source(payload),
        "text_source_spec": payload.text_source_spec,
        "language": language,
        "client_device_id": payload.client_device_id,
        "client_platform": payload.client_platform,
    }
    structured, _ = _structured(payload.text, action_items=False)
    segment = {
        "text": payload.text,
        "speaker": SPEAKER,
        "is_user": False,
        "start": 0.0,
        "end": max(0.0, (finished - started).total_seconds()),
    }
    item: Record = {
        "id": str(uuid.uuid4()),
        "created_at": iso_utc(now),
        "started_at": iso_utc(started),
        "finished_at": iso_utc(finished),
        "source": SOURCE_IMPORT,
        "structured": structured,
        "transcript_segments": [segment],
        "discarded": False,
        "app_id": app_id,
        "language": language,
        "external_data": {"integration": {k: v for k, v in integration.items() if v is not None}},
    }
    if payload.geolocation is not None:
        item["geolocation"] = payload.geolocation.model_dump(exclude_none=True)
    item["status"] = "completed"
    return micros(now), item


def wearable_conversation(
    text: str, *, started: datetime, finished: datetime | None = None, language: str = "en"
) -> tuple[int, Record]:
    """(created_us, ConversationItem) as if the Omi device recorded `text`: one segment per non-empty line."""
    started = as_utc(started)
    finished = as_utc(finished) if finished else started + DEFAULT_DURATION
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    step = max(0.0, (finished - started).total_seconds()) / max(1, len(lines))
    segments = [
        {
            "text": line,
            "speaker": SPEAKER,
            "is_user": False,
            "start": round(n * step, 3),
            "end": round((n + 1) * step, 3),
        }
        for n, line in enumerate(lines)
    ]
    structured, discarded = _structured(text, action_items=True)
    item: Record = {
        "id": str(uuid.uuid4()),
        "created_at": iso_utc(started),
        "started_at": iso_utc(started),
        "finished_at": iso_utc(finished),
        "source": SOURCE_WEARABLE,
        "structured": structured,
        "transcript_segments": segments,
        "discarded": discarded,
        "language": language,
        "status": "completed",
    }
    return micros(started), item


# --- memories --------------------------------------------------------------------------------------------------

_STAMPED = ("created_at", "updated_at", "scoring")


def memory_body(
    uid: str,
    content: str,
    tags: list[str],
    *,
    category: str,
    app_id: str | None,
    manual: bool = False,
    memory_id: str | None = None,
) -> Record:
    """A MemoryItem (§3.2) without its timestamps, which `put_memories` sets; `None`s left out as Omi does.

    The id is Omi's hash of the content unless one is given (API core's are random).
    """
    memory_id = memory_id or derive.memory_id(content)
    body: Record = {
        "id": memory_id,
        "uid": uid,
        "content": content,
        "category": category,
        "visibility": "private",
        "tags": tags,
        "created_at": None,
        "updated_at": None,
        "memory_id": memory_id,
        "reviewed": True,  # every memory written through the integration route is reviewed (§9.2)
        "manually_added": manual,
        "edited": False,
        "scoring": None,
        "app_id": app_id,
        "data_protection_level": "standard",
        "is_locked": False,
        "kg_extracted": False,
    }
    if manual:
        body["user_review"] = True
    return {key: value for key, value in body.items() if value is not None or key in _STAMPED}


def scoring(manual: bool, category: str, created: datetime) -> str:
    return f"{int(manual):02d}_{CATEGORY_BOOST.get(category, 0):03d}_{int(created.timestamp()):010d}"


def put_memories(store: SandboxStore, uid: str, bodies: Iterable[Record], now: datetime) -> list[Record]:
    """Write one batch, stamped now; the same id overwrites but keeps its first `created_at`."""
    now_us = micros(now)
    batch = {body["id"]: body for body in bodies}  # within one request, the last of an id wins
    created = store.memory_created(uid, batch)
    stored = []
    for memory_id, body in batch.items():
        created_us = created.get(memory_id, now_us)
        created_at = from_micros(created_us)
        score = scoring(body["manually_added"], body["category"], created_at)
        body |= {"created_at": iso_utc(created_at), "updated_at": iso_utc(now), "scoring": score}
        stored.append(StoredMemory(memory_id, body["manually_added"], created_us, body, score, now_us))
    store.put_memories(uid, stored)
    return [memory.body for memory in stored]
