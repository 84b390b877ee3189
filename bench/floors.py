"""The comparison servers of bench/ack_latency.py, each run as its own process:

  bare     parse the JSON body, answer 200                            (the floor)
  sqlite   the same plus one SQLite insert + commit per request      (the naive durable floor)
  postgresql  the same on PostgreSQL: one insert + commit per request, one connection  (its naive durable floor)
  naive    a bridge that calls Omi inside the handler and answers after Omi did  (what not to build)

python bench/floors.py {bare|sqlite|postgresql|naive} --port P [--postgres URL]
                       [--omi URL --app-id A --api-key K --uid U]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import uuid

import aiosqlite
from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def bare_app() -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        json.loads(await request.read())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/telegram/webhook", handle)
    return app


def sqlite_app() -> web.Application:
    async def open_db(app: web.Application):
        path = os.path.join(tempfile.mkdtemp(), "naive.db")
        db = await aiosqlite.connect(path, isolation_level=None)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=FULL")
        await db.execute("CREATE TABLE inbox (id INTEGER PRIMARY KEY, payload TEXT)")
        app["db"] = db
        yield
        await db.close()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        json.loads(body)
        # Autocommit: the insert is its own transaction, committed (and fsynced) before the answer.
        await request.app["db"].execute("INSERT INTO inbox (payload) VALUES (?)", (body.decode(),))
        return web.Response(text="ok")

    app = web.Application()
    app.cleanup_ctx.append(open_db)
    app.router.add_post("/telegram/webhook", handle)
    return app


def postgres_app(url: str) -> web.Application:
    import psycopg

    schema = f"floor_{uuid.uuid4().hex[:12]}"

    async def open_db(app: web.Application):
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"SET search_path = {schema}")
        await conn.execute("CREATE TABLE inbox (id BIGSERIAL PRIMARY KEY, payload TEXT)")
        app["db"] = conn
        yield
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        json.loads(body)
        # Autocommit: the insert is its own transaction, committed (WAL flushed) before the answer; the one
        # connection takes one statement at a time, as the SQLite floor's does.
        await request.app["db"].execute("INSERT INTO inbox (payload) VALUES (%s)", (body.decode(),))
        return web.Response(text="ok")

    app = web.Application()
    app.cleanup_ctx.append(open_db)
    app.router.add_post("/telegram/webhook", handle)
    return app


def naive_app(omi_url: str, app_id: str, api_key: str, uid: str) -> web.Application:
    from bot.omi.client import OmiClient
    from bot.omi.models import NewConversation

    async def open_client(app: web.Application):
        app["omi"] = OmiClient(omi_url, app_id, api_key, max_connections=256)
        yield
        await app["omi"].aclose()

    async def handle(request: web.Request) -> web.Response:
        update = json.loads(await request.read())
        text = update.get("message", {}).get("text", "")
        await request.app["omi"].create_conversation(uid, NewConversation(text=text, text_source="message"))
        return web.Response(text="ok")

    app = web.Application()
    app.cleanup_ctx.append(open_client)
    app.router.add_post("/telegram/webhook", handle)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=("bare", "sqlite", "postgresql", "naive"))
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--omi")
    parser.add_argument("--app-id")
    parser.add_argument("--api-key")
    parser.add_argument("--uid")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, as omi-bridge itself does")
    args = parser.parse_args()
    if args.uvloop:
        import asyncio

        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if args.kind == "bare":
        app = bare_app()
    elif args.kind == "sqlite":
        app = sqlite_app()
    elif args.kind == "postgresql":
        app = postgres_app(args.postgres)
    else:
        app = naive_app(args.omi, args.app_id, args.api_key, args.uid)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=lambda *_: print("ready", flush=True))


if __name__ == "__main__":
    main()
