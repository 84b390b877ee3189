"""Omi request and response models: exact in what we send, tolerant in what we read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

ConversationTextSource = Literal["audio_transcript", "message", "other_text"]
MemoryTextSource = Literal["email", "social_post", "other"]


def utc_iso(moment: datetime) -> str:
    """Always UTC, always ISO-8601 with an offset (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def utc_query(moment: datetime) -> str:
    """The `...Z` form Omi's date filters accept (a `+00:00` offset would need URL-escaping)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _Outgoing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Geolocation(BaseModel):
    model_config = ConfigDict(extra="ignore")

    latitude: float
    longitude: float
    google_place_id: str | None = None
    address: str | None = None
    location_type: str | None = None


class NewConversation(_Outgoing):
    """Body of `POST /v2/integrations/{app}/user/conversations`."""

    text: str
    text_source: ConversationTextSource = "message"
    text_source_spec: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    language: str | None = None
    geolocation: Geolocation | None = None

    @field_serializer("started_at", "finished_at")
    def _dates(self, value: datetime | None) -> str | None:
        return None if value is None else utc_iso(value)

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class ExplicitMemory(_Outgoing):
    content: str
    tags: list[str] = Field(default_factory=list)

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"content": self.content}
        if self.tags:
            data["tags"] = list(self.tags)
        return data


class NewMemories(_Outgoing):
    """Body of `POST /v2/integrations/{app}/user/memories`.

    The server's model declares `text: Optional[str]` with no default, which pydantic v2 makes a required key:
    `body()` always sends `text`, as null when only explicit memories are given.
    """

    text: str | None = None
    text_source: MemoryTextSource = "other"
    text_source_spec: str | None = None
    source_id: str | None = None
    memories: list[ExplicitMemory] = Field(default_factory=list)

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"text": self.text, "text_source": self.text_source}
        if self.text_source_spec is not None:
            data["text_source_spec"] = self.text_source_spec
        if self.source_id is not None:
            data["source_id"] = self.source_id
        if self.memories:
            data["memories"] = [memory.body() for memory in self.memories]
        return data


class _Incoming(BaseModel):
    # Omi adds fields over time and drops `None`s (`exclude_none=True`): ignore the unknown, default the missing.
    model_config = ConfigDict(extra="ignore")


class Structured(_Incoming):
    title: str = ""
    overview: str = ""
    emoji: str = ""
    category: str = ""
    action_items: list[dict[str, Any]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)


class Conversation(_Incoming):
    id: str
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    source: str | None = None
    structured: Structured = Field(default_factory=Structured)
    discarded: bool = False
    app_id: str | None = None
    language: str | None = None
    status: str | None = None
    external_data: dict[str, Any] | None = None
    geolocation: Geolocation | None = None
    transcript_segments: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("structured", mode="before")
    @classmethod
    def _none_structured(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("transcript_segments", mode="before")
    @classmethod
    def _segments(cls, value: Any) -> Any:
        return [segment for segment in value if isinstance(segment, dict)] if isinstance(value, list) else []

    @property
    def external_text(self) -> str | None:
        """The text we sent, which Omi keeps in `external_data` (the item has no top-level `text`)."""
        if self.external_data and isinstance(self.external_data.get("text"), str):
            return self.external_data["text"]
        return None

    @property
    def sent_text(self) -> str | None:
        """The text an integration sent: from `external_data`, or — on the staged implementation, which keeps
        none there (behaviour notes §9.6) — from the transcript segments it puts the text in."""
        if (text := self.external_text) is not None:
            return text
        texts = [segment["text"] for segment in self.transcript_segments if isinstance(segment.get("text"), str)]
        return "\n".join(texts) if texts else None


class Memory(_Incoming):
    id: str
    content: str = ""
    category: str | None = None
    tags: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    manually_added: bool | None = None
    app_id: str | None = None
    is_locked: bool = False

    @field_validator("tags", mode="before")
    @classmethod
    def _none_tags(cls, value: Any) -> Any:
        return [] if value is None else value


class SearchPage(_Incoming):
    conversations: list[Conversation] = Field(default_factory=list)
    total_pages: int = 0
    current_page: int = 1
    per_page: int = 10
