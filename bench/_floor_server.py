"""The floor of any shared document that keeps what is typed: save over HTTP, commit, then push.

``bench/realtime.py`` runs this as its second baseline, in its own process: a Starlette app on
uvicorn (as Keerpunt is served), one websocket per participant in a room, and a form POST that
writes the text as one row through SQLAlchemy on the same kind of database with Keerpunt's own
engine settings (``keerpunt.platform.db.make_engine``: WAL and ``synchronous=NORMAL`` on
SQLite), commits, and only then forwards it to the room's other sockets. No login, consent,
rendering, audit or sequence numbers: whatever a design that persists before it pushes cannot
do without.

    python bench/_floor_server.py PORT DATABASE_URL
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

import uvicorn
from sqlalchemy import Column, Integer, MetaData, Table, Text, insert
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from keerpunt.platform.db import make_engine

metadata = MetaData()
notes = Table(
    "bench_floor_note",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("room", Integer, nullable=False),
    Column("text", Text, nullable=False),
)
rooms: dict[int, dict[int, WebSocket]] = {}  # room -> seat -> socket


def build(url: str) -> Starlette:
    engine = make_engine(url)

    async def room(ws: WebSocket) -> None:
        seats = rooms.setdefault(int(ws.path_params["room"]), {})
        seat = int(ws.query_params["seat"])
        await ws.accept()
        seats[seat] = ws
        try:
            while True:
                await ws.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            seats.pop(seat, None)

    async def save(request: Request) -> PlainTextResponse:
        number = int(request.path_params["room"])
        form = await request.form()
        text = str(form["text"])
        seat = int(str(form["seat"]))
        async with engine.begin() as conn:
            await conn.execute(insert(notes).values(room=number, text=text))
        # After the commit, as Keerpunt does: a push never shows what was not saved.
        message = f'<li id="note">{text}</li>'
        # The author's own screen is left out, as Keerpunt's author has the save's answer.
        others = [ws for s, ws in rooms.get(number, {}).items() if s != seat]
        await asyncio.gather(*(_send(ws, message) for ws in others))
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
        yield
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
        await engine.dispose()

    return Starlette(
        routes=[
            Route("/rooms/{room:int}/notes", save, methods=["POST"]),
            WebSocketRoute("/rooms/{room:int}/ws", room),
        ],
        lifespan=lifespan,
    )


async def _send(ws: WebSocket, message: str) -> None:
    with contextlib.suppress(Exception):  # a socket that just closed
        await ws.send_text(message)


if __name__ == "__main__":
    uvicorn.run(
        build(sys.argv[2]),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        ws="websockets-sansio",  # as ``keerpunt serve`` runs, access log included
    )
