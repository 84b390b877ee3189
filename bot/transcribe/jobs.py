"""Durable transcription of voice messages (SPEC §11): one job per message, in the database, run by one instance at
a time, retried by `next_step`; the burst holding the message waits for its outcome before it closes.

The router calls `request` when a voice message joins a burst (after its row was accepted: the file reference is
durable before the platform was answered). The job's row keeps the attempts and, once known, the transcript, so a
replayed row or a restart finds it and never pays for a second transcription. A job another instance holds is
watched until it finishes (or its lease lapses, and this instance takes it over). The user hears the outcome once,
from the instance that finished it: `🎤 "…"` to check what was heard, or why it could not be."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from bot import texts
from bot.clock import Clock
from bot.events import InboundMessage, Platform, Reply
from bot.files import MAX_DOWNLOAD_BYTES, AudioSource, FileRefused, FileTooBig, FileUnavailable
from bot.store.leases import Lease
from bot.store.transcripts import Job, JobState, Transcripts
from bot.transcribe.client import Transcriber, primary_language
from bot.transcribe.errors import TranscriptionError, TranscriptionFailed, TranscriptionRetry
from bot.transcribe.policy import MAX_AGE, MAX_ATTEMPTS, GiveUp, next_step

log = logging.getLogger(__name__)

#: A job's lease (the database's clock): renewed every third of it while a request runs (a long file on a slow
#: local model takes minutes), so a dead instance's job is taken over within a minute.
LEASE_SECONDS = 60.0
#: How often a job another instance holds is looked at (real time).
WATCH_SECONDS = 0.5
#: How many downloads and transcriptions run at once, across users.
CONCURRENCY = 4
ECHO_CHARS = 200

TOO_BIG = f"the file is over {MAX_DOWNLOAD_BYTES // (1024 * 1024)} MB"
NOT_DOWNLOADED = "the file could not be downloaded"
NOTHING_HEARD = "no speech was heard"
UNEXPECTED = "an unexpected error"
KEPT_FAILING = "transcription kept failing"


def job_key(message: InboundMessage) -> str:
    """One voice message: its session and id (an edit of it, or its row replayed, is the same job)."""
    return f"{message.session_key}:{message.message_id}"


def echo(transcript: str) -> str:
    """`🎤 "first 200 characters…"`: what was heard, for the user to check."""
    text = " ".join(transcript.split())
    if len(text) > ECHO_CHARS:
        text = text[:ECHO_CHARS].rstrip() + "…"
    return f'🎤 "{text}"'


class TranscriptionJobs:
    def __init__(
        self,
        transcripts: Transcripts,
        transcriber: Transcriber,
        clock: Clock,
        sources: Mapping[Platform, AudioSource],
        send: Callable[[Reply], Awaitable[None]],
        owner: str,
        *,
        rng: random.Random | None = None,
        concurrency: int = CONCURRENCY,
        lease_seconds: float = LEASE_SECONDS,
        watch_seconds: float = WATCH_SECONDS,
    ) -> None:
        self._store = transcripts
        self._transcriber = transcriber
        self._clock = clock
        self._sources = sources
        self._send = send
        self._owner = owner
        self._rng = rng or random.Random()
        self._slots = asyncio.Semaphore(concurrency)
        self._lease_seconds = lease_seconds / clock.scale
        self._watch_seconds = watch_seconds
        self._results: dict[str, Job] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()

    # --- what the router and the bursts use -----------------------------------------------------------------

    async def request(self, message: InboundMessage) -> None:
        """Make sure `message`'s audio is being transcribed (or already was): a job row, and a task watching it."""
        key = job_key(message)
        if message.audio is None or key in self._results or key in self._tasks:
            return
        job = await self._store.want(key, message.account, self._clock.now())
        if job.finished:
            self._settled(job)  # transcribed before a restart: found, not paid for again, not announced again
            return
        self._tasks[key] = asyncio.create_task(self._run(key, message), name=f"transcribe:{key}")

    def outstanding(self, messages: Iterable[InboundMessage]) -> asyncio.Event | None:
        """None when every audio message of `messages` has its outcome; else an event set at the next outcome."""
        if any(m.audio is not None and job_key(m) not in self._results for m in messages):
            return self._changed
        return None

    async def settle(self, messages: Sequence[InboundMessage]) -> None:
        """Wait until every audio message of `messages` has its outcome (asking for those never requested)."""
        for message in messages:
            if message.audio is not None:
                await self.request(message)
        while (event := self.outstanding(messages)) is not None:
            await event.wait()

    def heard(self, messages: Sequence[InboundMessage]) -> list[InboundMessage]:
        """The messages with their transcripts (or why there is none) filled in."""
        out = []
        for message in messages:
            job = self._results.get(job_key(message)) if message.audio is not None else None
            if job is None:
                out.append(message)
            elif job.state is JobState.DONE:
                out.append(replace(message, transcript=job.text or ""))
            else:
                out.append(replace(message, untranscribed=job.text or UNEXPECTED))
        return out

    def keys(self, messages: Iterable[InboundMessage]) -> list[str]:
        return [job_key(m) for m in messages if m.audio is not None]

    def stored(self, keys: Iterable[str]) -> None:
        """Their burst is stored (and the rows deleted with it): forget them here too."""
        for key in keys:
            self._results.pop(key, None)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    # --- one job ---------------------------------------------------------------------------------------------

    def _settled(self, job: Job) -> None:
        self._results[job.key] = job
        self._tasks.pop(job.key, None)
        self._changed.set()
        self._changed = asyncio.Event()

    async def _run(self, key: str, message: InboundMessage) -> None:
        while True:
            try:
                if await self._step(key, message):
                    return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: look again in a moment, nothing is lost
                log.warning("transcription: job step failed (%s); trying again", type(exc).__name__)
                await asyncio.sleep(self._watch_seconds)

    async def _step(self, key: str, message: InboundMessage) -> bool:
        """One look at the job: True once it has an outcome here."""
        job = await self._store.get(key)
        if job is None:  # removed (/unlink) or stored with a burst by another instance
            self._settled(Job(key, message.account, JobState.FAILED, "the message was removed", 0, None, 0.0))
            return True
        if job.finished:
            self._settled(job)
            return True
        if job.next_attempt_at > self._clock.now():
            await self._clock.sleep_until(job.next_attempt_at)
            return False
        lease = await self._store.take(key, self._owner, self._lease_seconds)
        if lease is None:  # another instance runs it: watch for its outcome, or for its lease to lapse
            await asyncio.sleep(self._watch_seconds)
            return False
        finished = False
        try:
            async with self._slots:
                finished = await self._attempt(lease, job, message)
            return finished
        finally:
            if not finished:  # a finished job's lease went with its outcome (`Transcripts.finish`)
                with contextlib.suppress(Exception):
                    await self._store.release(lease)

    async def _attempt(self, lease: Lease, job: Job, message: InboundMessage) -> bool:
        now = self._clock.now()
        first = job.first_attempt_at or now
        if job.attempts >= MAX_ATTEMPTS or now - first > MAX_AGE:  # attempts cut short by restarts count too
            return await self._finish(lease, job, message, JobState.FAILED, KEPT_FAILING)
        if not await self._store.started(lease, job.key, now):
            return False  # finished or taken over meanwhile: the next look says which
        attempts = job.attempts + 1
        renewing = asyncio.create_task(self._renew(lease))
        heard: str | TranscriptionError
        try:
            heard = await self._transcribe(message)
        except TranscriptionError as exc:
            heard = exc
        except Exception:
            log.exception("transcription: unexpected error")
            heard = TranscriptionRetry(UNEXPECTED)
        finally:
            renewing.cancel()
        if isinstance(heard, str):
            return await self._finish(lease, job, message, JobState.DONE, heard)
        step = next_step(attempts, first, self._clock.now(), heard, rng=self._rng)
        if isinstance(step, GiveUp):
            log.info("transcription: gave up after %d attempt(s): %s", attempts, step.reason)
            return await self._finish(lease, job, message, JobState.FAILED, step.reason)
        log.info("transcription: attempt %d failed (%s); trying again", attempts, step.reason)
        await self._store.retry_at(lease, job.key, step.at)
        return False

    async def _transcribe(self, message: InboundMessage) -> str:
        audio = message.audio
        assert audio is not None
        source = self._sources.get(message.platform)
        if source is None:
            raise TranscriptionFailed(f"{message.platform.title} files cannot be downloaded here")
        try:
            data = await source.fetch_audio(audio)
        except FileTooBig:
            raise TranscriptionFailed(TOO_BIG) from None
        except FileRefused as exc:
            raise TranscriptionFailed(str(exc) or NOT_DOWNLOADED) from None
        except FileUnavailable:
            raise TranscriptionRetry(NOT_DOWNLOADED) from None
        # The user's own voice in their app's language; a forward may be anyone's, in any language.
        language = primary_language(message.language) if message.forward_origin is None else None
        text = await self._transcriber.transcribe(data, filename=audio.filename, mime=audio.mime, language=language)
        text = text.strip()
        if not text:
            raise TranscriptionFailed(NOTHING_HEARD)
        return text

    async def _renew(self, lease: Lease) -> None:
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            with contextlib.suppress(Exception):
                await self._store.renew(lease, self._lease_seconds)

    async def _finish(self, lease: Lease, job: Job, message: InboundMessage, state: JobState, text: str) -> bool:
        if not await self._store.finish(lease, job.key, state, text, self._clock.now()):
            return False  # no longer ours: whoever took it over records (and announces) the outcome
        self._settled(replace(job, state=state, text=text))
        reply = echo(text) if state is JobState.DONE else texts.voice_failed(message.audio, text)
        try:
            await self._send(Reply(message.address(), text=reply))
        except Exception as exc:  # the outcome is stored; the burst goes on without the echo
            log.warning("transcription: could not tell the user (%s)", type(exc).__name__)
        return True
