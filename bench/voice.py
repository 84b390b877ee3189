"""What voice and links cost a burst (SPEC §11), in process on 127.0.0.1: the bridge on SQLite with the embedded
sandbox, the fake OpenAI-compatible STT answering after `--stt-seconds` (default 1 s), the fake web server.

Prints, as medians over `--rounds`:
- a text burst's time from acceptance to Omi's acceptance (the 👍), and a voice burst's, with their difference:
  the latency transcription adds to a burst (the service's own time included), and the part that is ours;
- one `Transcriber.transcribe` call against the fake alone, above the service's own time (the client's overhead);
- `with_previews` for a message with 0, 1 and 3 links to fast local pages: the preview overhead per link.

    .venv/bin/python bench/voice.py [--rounds 10] [--stt-seconds 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.bridge import Bridge  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.events import Audio, InboundMessage, Platform  # noqa: E402
from bot.omi.client import OmiClient  # noqa: E402
from bot.previews import allow_any, preview  # noqa: E402
from bot.previews.burst import with_previews  # noqa: E402
from bot.store import Store  # noqa: E402
from bot.transcribe import Transcriber  # noqa: E402
from tests.fake_stt import FakeSTT  # noqa: E402
from tests.fake_web import FakeWeb, og_page  # noqa: E402
from tests.harness import ChatAdapter, ChatUser, make_sandbox  # noqa: E402

WINDOWS = (0.3, 2.0)  # a short one (the transcript outlasts the window) and the default
OGG = b"OggS" + bytes(16_000)  # about a 4-second Opus voice note


class MemoryAudio:
    async def fetch_audio(self, audio: Audio) -> bytes:
        return OGG


async def _saved(user: ChatUser, started: float, timeout: float = 30.0) -> tuple[float, float | None]:
    """Seconds from `started` until the 👍 on the burst (Omi accepted it), and until the 🎤 echo if there was one."""
    echoed = None
    async with asyncio.timeout(timeout):
        while not (reply := await user.reply(timeout)).reaction:
            if reply.text.startswith("🎤"):
                echoed = time.perf_counter() - started
    return time.perf_counter() - started, echoed


async def bursts(rounds: int, stt_seconds: float, window: float) -> dict[str, float]:
    clock = SystemClock()
    sandbox, base_url, app_id, api_key = await make_sandbox(conversations_per_hour=0, memories_per_hour=0)
    sandbox.enable(app_id, "uid-bench")
    stt = FakeSTT(default_text="remind me to water the tomatoes tomorrow morning")
    await stt.start()
    omi = OmiClient(base_url, app_id, api_key)
    transcriber = Transcriber(stt.base_url)
    with tempfile.TemporaryDirectory() as folder:
        store = await Store.open(str(Path(folder) / "bench.db"), clock)
        bridge = Bridge(store, omi, clock, batch_window=window, transcriber=transcriber)
        adapter = ChatAdapter()
        bridge.register_adapter(adapter, adapter.parse, session_hint=adapter.session_hint, audio=MemoryAudio())
        await bridge.start()
        text_times, voice_times, echo_times = [], [], []
        try:
            for n in range(rounds):
                user = ChatUser(bridge, adapter, user_id=str(5000 + n))
                await store.links.link_verified(user.account, "uid-bench")
                started = time.perf_counter()
                await user.say(f"a plain note number {n}")
                text_times.append((await _saved(user, started))[0])
                stt.queue_text(f"voice note number {n}", delay=stt_seconds)
                audio = Audio("voice", f"file-{n}", duration=4, size=len(OGG), mime="audio/ogg", filename="voice.ogg")
                started = time.perf_counter()
                await user.say("", audio=audio)
                saved, echoed = await _saved(user, started)
                voice_times.append(saved)
                echo_times.append(echoed if echoed is not None else float("nan"))
        finally:
            await bridge.stop()
            await store.close()
    client_times = []
    for _ in range(rounds):
        stt.queue_text("just the client", delay=stt_seconds)
        started = time.perf_counter()
        await transcriber.transcribe(OGG, filename="voice.ogg", mime="audio/ogg")
        client_times.append(time.perf_counter() - started - stt_seconds)
    await transcriber.aclose()
    await omi.aclose()
    await stt.stop()
    await sandbox.stop()
    text, spoken = statistics.median(text_times), statistics.median(voice_times)
    return {
        "window_s": window,
        "transcript_s": statistics.median(echo_times),
        "text_burst_s": text,
        "voice_burst_s": spoken,
        "added_s": spoken - text,
        "ours_s": spoken - text - stt_seconds,
        "client_overhead_ms": statistics.median(client_times) * 1000,
    }


async def previews(rounds: int) -> dict[str, float]:
    web = await FakeWeb().start()
    for index in range(3):
        web.html(f"/page{index}", og_page(f"Page {index}", "a short description of the page"))
    fetch = functools.partial(preview, allow=allow_any)
    figures: dict[str, float] = {}
    try:
        for links in (0, 1, 3):
            text = "see " + " and ".join(web.url(f"/page{index}") for index in range(links))
            message = InboundMessage(Platform.TELEGRAM, "1", "1", "Ada", "1", 1, datetime.now(UTC), text=text)
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                await with_previews([message], fetch)
                times.append(time.perf_counter() - started)
            figures[f"links_{links}_ms"] = statistics.median(times) * 1000
    finally:
        await web.stop()
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--stt-seconds", type=float, default=1.0)
    args = parser.parse_args()
    print(f"fake STT answering in {args.stt_seconds:.1f} s, {args.rounds} rounds each, medians")
    for window in WINDOWS:
        burst = await bursts(args.rounds, args.stt_seconds, window)
        ours = burst["transcript_s"] - args.stt_seconds
        print(f"BATCH_WINDOW_SECONDS={window}")
        _line("text burst accepted → 👍", burst["text_burst_s"])
        _line("voice burst accepted → 👍", burst["voice_burst_s"])
        _line("voice accepted → 🎤 echo", burst["transcript_s"], "the transcript is known")
        _line("added to the burst", burst["added_s"], "transcription runs during the window")
        _line("the bridge's part of the echo", ours, "job row, lease, download, upload")
        _line("Transcriber.transcribe overhead", burst["client_overhead_ms"] / 1000, "above the service's own time")
    links = await previews(args.rounds * 3)
    one = links["links_1_ms"] - links["links_0_ms"]
    three = links["links_3_ms"] - links["links_0_ms"]
    shown = ", ".join(f"{n} link(s) {links[f'links_{n}_ms']:.2f} ms" for n in (0, 1, 3))
    print(f"previews: {shown}")
    print(f"  preview overhead per link        {one:8.2f} ms alone, {three / 3:.2f} ms each of 3 fetched side by side")


def _line(label: str, seconds: float, note: str = "") -> None:
    print(f"  {label:<32} {seconds * 1000:8.1f} ms" + (f"  ({note})" if note else ""))


if __name__ == "__main__":
    asyncio.run(main())
