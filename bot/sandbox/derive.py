"""Deterministic stand-ins for Omi's LLM steps: a conversation's title/overview/emoji/category, memory extraction.

Rules (documented because tests and users rely on them):
- A text is **trivial** when it holds fewer than `MIN_WORDS` (3) words (a word is a run of letters/digits). A trivial
  conversation gets an empty title, which makes it `discarded`, as Omi's `discarded = (title == "")` does.
- The title is the first 8 words of the first sentence of the first non-empty line (a leading `Name:` speaker label
  dropped), first letter upper-cased, trailing punctuation removed, at most 80 characters.
- The overview is the first two sentences of the whitespace-normalised text, at most 280 characters.
- Emoji and category come from a small keyword table (most hits wins, first row on a tie), else 🧠 / "other".
- Extraction: each sentence (split on `.`, `!`, `?` followed by whitespace, or on line breaks) with at least
  `MIN_EXTRACT_WORDS` (4) words becomes one memory, first `MAX_EXTRACTED` (20) distinct ones, in text order.
- Action items (only for `text_source=audio_transcript`, as Omi's transcript prompt alone extracts them, §9.3): each
  sentence holding a to-do phrase (`ACTION_PHRASES`: "need to", "remember to", "todo", …), first `MAX_ACTION_ITEMS`
  (10), trailing punctuation removed, first letter upper-cased.
- Memory ids are Omi's `document_id_from_seed(content)`: a uuid4 built from the first 16 bytes of sha256(content).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

MIN_WORDS = 3
MIN_EXTRACT_WORDS = 4
MAX_EXTRACTED = 20
TITLE_WORDS = 8
TITLE_MAX_CHARS = 80
OVERVIEW_MAX_CHARS = 280
MAX_ACTION_ITEMS = 10
ACTION_PHRASES = ("need to", "have to", "remember to", "don't forget to", "todo", "to-do", "remind me to")

_WORD = re.compile(r"\w+")
_SPEAKER_LABEL = re.compile(r"^[^:\n]{1,40}:\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")

# (category, emoji, keywords): the first rows win ties.
_TOPICS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("work", "💼", frozenset("meeting project deadline client office team work boss colleague job".split())),
    ("travel", "✈️", frozenset("flight trip hotel travel airport vacation train booking passport".split())),
    ("health", "🏥", frozenset("doctor health gym workout sleep medicine running hospital diet".split())),
    ("finance", "💰", frozenset("money pay paid invoice budget price bank rent salary cost".split())),
    ("family", "👨‍👩‍👧", frozenset("mom dad mother father family kids sister brother son daughter".split())),
    ("technology", "💻", frozenset("code bug app software computer deploy server api release".split())),
    ("social", "🎉", frozenset("party dinner friends birthday weekend lunch drinks wedding".split())),
)


@dataclass(frozen=True)
class Structure:
    """What Omi's summarising LLM step would return for a conversation."""

    title: str
    overview: str
    emoji: str
    category: str

    @property
    def discarded(self) -> bool:
        return self.title == ""


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def is_trivial(text: str) -> bool:
    return word_count(text) < MIN_WORDS


def structure(text: str) -> Structure:
    """Title, overview, emoji and category for a conversation's text; an empty title when it is trivial."""
    if is_trivial(text):
        return Structure(title="", overview="", emoji="🧠", category="other")
    category, emoji = _topic(text)
    return Structure(title=_title(text), overview=_overview(text), emoji=emoji, category=category)


def extract_memories(text: str) -> list[str]:
    """The memories Omi's extraction would find in `text` (possibly none)."""
    found: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = " ".join(sentence.split())
        if word_count(sentence) >= MIN_EXTRACT_WORDS and sentence not in found:
            found.append(sentence)
            if len(found) == MAX_EXTRACTED:
                break
    return found


def action_items(text: str) -> list[str]:
    """The to-dos Omi's transcript prompt would find in `text`, in text order."""
    found: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = " ".join(_SPEAKER_LABEL.sub("", sentence.strip()).split()).rstrip(" .,;:!?")
        lowered = sentence.lower()
        if any(phrase in lowered for phrase in ACTION_PHRASES) and sentence not in found:
            found.append(sentence[:1].upper() + sentence[1:])
            if len(found) == MAX_ACTION_ITEMS:
                break
    return found


def memory_id(content: str) -> str:
    """Omi's `document_id_from_seed`: the same content always gets the same id."""
    digest = hashlib.sha256(content.encode("utf-8")).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _title(text: str) -> str:
    first_line = next(line for line in text.splitlines() if line.strip()).strip()
    unlabelled = _SPEAKER_LABEL.sub("", first_line)
    if word_count(unlabelled) == 0:
        unlabelled = first_line
    first_sentence = _SENTENCE_END.split(unlabelled, maxsplit=1)[0]
    title = " ".join(first_sentence.split()[:TITLE_WORDS])[:TITLE_MAX_CHARS].rstrip(" .,;:!?-")
    return title[:1].upper() + title[1:] if title else first_line[:TITLE_MAX_CHARS]


def _overview(text: str) -> str:
    sentences = [" ".join(part.split()) for part in _SENTENCE_END.split(text) if part.strip()]
    overview = " ".join(sentences[:2])
    if len(overview) > OVERVIEW_MAX_CHARS:
        overview = overview[: OVERVIEW_MAX_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return overview


def _topic(text: str) -> tuple[str, str]:
    words = {word.lower() for word in _WORD.findall(text)}
    best, best_hits = ("other", "🧠"), 0
    for category, emoji, keywords in _TOPICS:
        hits = len(words & keywords)
        if hits > best_hits:
            best, best_hits = (category, emoji), hits
    return best
