"""Live fan-out: from one participant's save to every other participant's screen.

Starts Keerpunt in its own server process (uvicorn, one process, like production without a
worker pool) on a fresh database, opens ``--sessions`` triage sessions with
``--participants`` people each (a real websocket per person, logged in, consent recorded),
and lets one participant per session save a factor every ``--interval`` seconds. For every
save it records, for each *other* participant, the time from sending the save to receiving
the pushed fragment that contains it.

Baseline, measured in the same run with the same numbers of rooms, people and saves: a bare
websocket broadcast server (the ``websockets`` library, one process, no database, no
rendering) that forwards each message to the other sockets of its room.

Between the two, the floor (``_floor_server.py``, same run, same rooms and saves): a Starlette
app on uvicorn that takes the save as an HTTP form, commits it as one row on the same kind of
database with Keerpunt's engine settings, and only then pushes it to the room's other
sockets. It is what any shared document that keeps every edit must do at least; the gap from
the baseline to the floor is the price of saving before pushing, the gap from the floor to
Keerpunt the price of login, consent per viewer, audit and drawing each view.

    .venv/bin/python bench/realtime.py [--sessions 50] [--participants 12]
        [--saves 10] [--interval 3] [--database URL] [--mixed]

With ``--mixed`` the table is more like a real one: the parent and the youth take two of
the seats (they do not save) and two experts read in English, so every push is drawn in six
different views (coordinator, experts, English experts, parent, youth… ) instead of two
(coordinator, experts): the fan-out's cost per view shows.

It prints p50 and p99 for all three and the ratios, and the servers' CPU time per save (stabler than
latency on a busy machine). Target (issue #3): p99 under 250 ms and within 4x of the baseline.
Nothing is asserted: it is for people.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import _setup
import httpx
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from keerpunt.consent.service import Decision, Purpose, record_consent
from keerpunt.platform.db import make_engine
from keerpunt.platform.models import CaseMember, LoginSession, Organisation, User
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.schema import metadata
from keerpunt.platform.sessions import COOKIE_NAME, SessionSigner, start_session, token_hash
from keerpunt.triage import service as triage

YES = {key: True for key, _q, _w in triage.ENTRY_QUESTIONS}
JOINING = 50  # websocket handshakes in flight at once while everyone joins

# The bare baseline server, run in its own process: rooms by path, forward to the others.
BASELINE_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve

rooms = {}

async def handler(ws):
    room = rooms.setdefault(ws.request.path, set())
    room.add(ws)
    try:
        async for message in ws:
            for other in list(room):
                if other is not ws:
                    try:
                        await other.send(message)
                    except Exception:
                        pass
    finally:
        room.discard(ws)

async def main():
    async with serve(handler, "127.0.0.1", int(sys.argv[1]), max_queue=None):
        print("ready", flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


class SaveFailed(Exception):
    pass


@dataclass
class Seat:
    cookie: str
    csrf: str


@dataclass
class Table:
    session_id: int
    seats: list[Seat] = field(default_factory=list)  # those who save first


FAMILY = ("parent", "youth")  # the seats the family takes with --mixed (they do not save)
ENGLISH = 2  # experts who read in English with --mixed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def seed(
    url: str, env: dict[str, str], sessions: int, participants: int, *, mixed: bool = False
) -> list[Table]:
    """A fresh database with ``sessions`` planned sessions of ``participants`` staff each
    (``mixed``: the family in two of the seats, two experts in English)."""
    family = FAMILY if mixed else ()
    engine = make_engine(url, pool=False)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    await engine.dispose()
    rt = Runtime.build(_setup.settings(url, env))
    async with rt.sessionmaker() as db, db.begin():
        team = Organisation(name="Triageteam", kind="other")
        db.add(team)
        await db.flush()
        providers = [Organisation(name=f"Aanbieder {i}", kind="provider") for i in range(4)]
        db.add_all(providers)
        await db.flush()
        coord = User(
            organisation_id=team.id, display_name="Coördinator", email="c@x", roles="coordinator"
        )
        reg = User(
            organisation_id=team.id, display_name="Lokaal team", email="r@x", roles="registrar"
        )
        experts = [
            User(
                organisation_id=providers[i % 4].id,
                display_name=f"Expert {i}",
                email=f"e{i}@x",
                roles="triage_member",
            )
            for i in range(participants - 1 - len(family))
        ]
        db.add_all([coord, reg, *experts])
    signer = SessionSigner(env["KEERPUNT_SECRET_KEY"])
    tables: list[Table] = []
    for n in range(sessions):
        async with rt.unit_of_work(staff_principal(reg)) as uow:
            case = await triage.register_case(
                uow,
                triage.Registration(
                    answers=YES,
                    youth_name=f"Jeugdige {n}",
                    birth_date=dt.date(2017, 5, 1),  # under 12: the parent consents
                    bsn="",
                    situation="",
                    parent_names=(f"Ouder {n}",),
                    jim_name="",
                    municipality_id=None,
                ),
            )
            parent = await uow.db.scalar(
                select(CaseMember.id).where(
                    CaseMember.case_id == case.id, CaseMember.role == "parent"
                )
            )
            assert parent is not None
            await record_consent(
                uow,
                case,
                subject_member_id=parent,
                purpose=Purpose.INFORMATION_EXCHANGE,
                decision=Decision.CONSENT,
                recipient_org_id=None,
                recipient_role=None,
                obtained_how="in_person",
                explanation="Uitgelegd wie aan tafel zit en wat er gedeeld wordt.",
                valid_until=None,
            )
        async with rt.unit_of_work(staff_principal(coord)) as uow:
            planned = await triage.plan_session(
                uow, case.id, dt.datetime.now(dt.UTC), [e.id for e in experts]
            )
        table = Table(planned.id)
        # (user, member, locale): the coordinator, the experts (two in English with --mixed),
        # then the family (who do not save).
        logins: list[tuple[int | None, int | None, str]] = [
            (user.id, None, "en" if mixed and 1 <= i <= ENGLISH else "nl")
            for i, user in enumerate((coord, *experts))
        ]
        async with rt.sessionmaker() as db:
            for role in family:
                member = await db.scalar(
                    select(CaseMember.id).where(
                        CaseMember.case_id == case.id, CaseMember.role == role
                    )
                )
                assert member is not None
                logins.append((None, member, "nl"))
        for user_id, member_id, locale in logins:
            async with rt.sessionmaker() as db, db.begin():
                token = await start_session(
                    db, how="bench", hours=2, locale=locale, user_id=user_id, member_id=member_id
                )
            async with rt.sessionmaker() as db:
                row = await db.get(LoginSession, token_hash(token))
                assert row is not None
                table.seats.append(Seat(signer.dumps(token), row.csrf_token))
        tables.append(table)
    await rt.engine.dispose()
    return tables


def _start(
    cmd: list[str], env: dict[str, str], ready: Callable[[], bool], log: str
) -> subprocess.Popen[str]:
    # The server's output goes to a file: a pipe nobody reads fills up (an access-log line
    # per request) and then blocks the server mid-run.
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log) as f:
                raise SystemExit(f"server did not start:\n{f.read()[-3000:]}")
        if ready():
            return proc
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start within 30 s")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:  # stuck finishing its connections: do not leave it
        proc.kill()
        proc.wait(10)


def _port_open(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    return check


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _drive(
    sockets: list[list[ClientConnection]],
    save: Callable[[int, int, str], Awaitable[None]],
    saves: int,
    interval: float,
    savers: int,
) -> tuple[list[float], int]:
    """Every table saves ``saves`` times, in turns by its first ``savers`` seats; returns
    latencies (s) and the number of misses."""
    sent: dict[str, float] = {}
    latencies: list[float] = []
    failed: list[str] = []
    expected = 0
    received = 0

    async def listen(ws: ClientConnection, me: tuple[int, int]) -> None:
        nonlocal received
        seen: set[str] = set()  # a save can show in several places of one push
        async for message in ws:
            now = time.perf_counter()
            text = message if isinstance(message, str) else message.decode()
            start = text.find("KPB-")
            while start != -1:
                end = text.find("-END", start)
                marker = text[start : end + 4]
                t0 = sent.get(marker)
                if (
                    t0 is not None
                    and marker not in seen
                    and not marker.startswith(f"KPB-{me[0]}-{me[1]}-")
                ):
                    seen.add(marker)
                    latencies.append(now - t0)
                    received += 1
                start = text.find("KPB-", end)

    listeners = [
        asyncio.create_task(listen(ws, (t, s)))
        for t, row in enumerate(sockets)
        for s, ws in enumerate(row)
    ]

    async def table_loop(t: int) -> None:
        nonlocal expected
        await asyncio.sleep(interval * t / len(sockets))  # stagger the tables
        for k in range(saves):
            seat = k % savers
            marker = f"KPB-{t}-{seat}-{k}-END"
            sent[marker] = time.perf_counter()
            expected += len(sockets[t]) - 1
            try:
                await save(t, seat, marker)
            except (httpx.HTTPError, SaveFailed) as exc:
                # Counted, not fatal: an overloaded server shows as failed saves and misses.
                failed.append(f"{type(exc).__name__}: {exc}"[:200])
            await asyncio.sleep(interval)

    await asyncio.gather(*(table_loop(t) for t in range(len(sockets))))
    await asyncio.sleep(3)  # let the last pushes arrive
    for task in listeners:
        task.cancel()
    if failed:
        print(f"  {len(failed)} saves failed, e.g. {failed[0]}", flush=True)
    return latencies, expected - received


async def _settle(sockets: list[list[ClientConnection]], quiet: float = 2.0) -> None:
    """Wait until no socket has received anything for ``quiet`` seconds."""
    while True:
        got = 0

        async def drain(ws: ClientConnection) -> None:
            nonlocal got
            with contextlib.suppress(TimeoutError):
                while True:
                    await asyncio.wait_for(ws.recv(), quiet)
                    got += 1

        await asyncio.gather(*(drain(ws) for row in sockets for ws in row))
        if not got:
            return


def _cpu_seconds(pid: int) -> float:
    """CPU time a process used so far (Linux): unlike latency, it does not grow when other
    programs on the machine take the processor, so runs on a busy machine compare."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


async def measure_keerpunt(
    tables: list[Table], port: int, saves: int, interval: float, pid: int, savers: int
) -> tuple[list[float], int]:
    base = f"http://127.0.0.1:{port}"
    cpu0 = _cpu_seconds(pid)
    # Everyone joins at once, as at the start of the meetings (at most JOINING handshakes in
    # flight, like browsers opening the page): the server must not starve the handshakes.
    gate = asyncio.Semaphore(JOINING)
    handshakes: list[float] = []

    refused: list[str] = []

    async def join(table: Table, seat: Seat) -> ClientConnection:
        t0 = time.perf_counter()
        for attempt in range(10):
            try:
                async with gate:
                    ws = await connect(
                        f"ws://127.0.0.1:{port}/triage/sessions/{table.session_id}/ws",
                        additional_headers={
                            "Cookie": f"{COOKIE_NAME}={seat.cookie}",
                            "Origin": base,
                        },
                        max_size=None,
                        open_timeout=120,
                    )
                    await ws.send(json.dumps({"type": "resume", "after": 0}))
                    await ws.recv()  # the first push: who is present (the screen is live)
                handshakes.append(time.perf_counter() - t0)
                return ws
            except (OSError, InvalidStatus, ConnectionClosed) as exc:
                # The browser's websocket extension retries too (with a back-off).
                refused.append(f"{type(exc).__name__}: {exc}"[:160])
                await asyncio.sleep(min(5.0, 0.5 * 2**attempt))
        raise SystemExit(f"could not join after 10 attempts: {refused[-1]}")

    t_join = time.perf_counter()
    sockets = list(
        await asyncio.gather(
            *(asyncio.gather(*(join(table, seat) for seat in table.seats)) for table in tables)
        )
    )
    joined = time.perf_counter() - t_join
    cpu_join = _cpu_seconds(pid) - cpu0
    print(
        f"  {len(handshakes)} participants joined in {joined:.1f} s; from connect to the first"
        f" push p50 {_percentile(handshakes, 0.5) * 1000:.0f} ms,"
        f" p99 {_percentile(handshakes, 0.99) * 1000:.0f} ms; server CPU {cpu_join:.1f} s",
        flush=True,
    )
    if refused:
        print(f"  {len(refused)} handshakes refused and retried, e.g. {refused[0]}", flush=True)
    await _settle(sockets)  # everyone has joined: the presence lists are drawn
    limits = httpx.Limits(max_connections=len(tables) * 2)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:

        async def save(t: int, s: int, marker: str) -> None:
            seat = tables[t].seats[s]
            r = await http.post(
                f"/triage/sessions/{tables[t].session_id}/factors",
                data={"life_area": "school", "kind": "perpetuating", "text": marker},
                headers={"X-CSRF-Token": seat.csrf, "HX-Request": "true", "Origin": base},
                cookies={COOKIE_NAME: seat.cookie},
            )
            if r.status_code != 200:
                raise SaveFailed(f"{r.status_code} {r.text[:100]}")

        cpu1 = _cpu_seconds(pid)
        result = await _drive(sockets, save, saves, interval, savers)
        cpu = _cpu_seconds(pid) - cpu1
    done = saves * len(tables)
    print(
        f"  server CPU while saving: {cpu:.1f} s, {cpu / done * 1000:.0f} ms per save"
        f" (save, fan-out to {len(tables[0].seats) - 1} others, audit)",
        flush=True,
    )
    for row in sockets:
        for ws in row:
            await ws.close()
    return result


async def measure_baseline(
    sessions: int, participants: int, port: int, saves: int, interval: float, savers: int
) -> tuple[list[float], int]:
    sockets = [
        [
            await connect(f"ws://127.0.0.1:{port}/room/{t}", max_size=None)
            for _ in range(participants)
        ]
        for t in range(sessions)
    ]
    await asyncio.sleep(1)

    async def save(t: int, s: int, marker: str) -> None:
        await sockets[t][s].send(json.dumps({"text": marker}))

    result = await _drive(sockets, save, saves, interval, savers)
    for row in sockets:
        for ws in row:
            await ws.close()
    return result


async def measure_floor(
    sessions: int,
    participants: int,
    port: int,
    saves: int,
    interval: float,
    savers: int,
    pid: int,
) -> tuple[list[float], int]:
    """The same rooms and saves against ``_floor_server.py``: an HTTP save committed to the
    database, then pushed to the room's other sockets."""
    base = f"http://127.0.0.1:{port}"
    sockets = [
        [
            await connect(f"ws://127.0.0.1:{port}/rooms/{t}/ws?seat={s}", max_size=None)
            for s in range(participants)
        ]
        for t in range(sessions)
    ]
    await asyncio.sleep(1)
    limits = httpx.Limits(max_connections=sessions * 2)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:

        async def save(t: int, s: int, marker: str) -> None:
            r = await http.post(f"/rooms/{t}/notes", data={"text": marker, "seat": str(s)})
            if r.status_code != 200:
                raise SaveFailed(f"{r.status_code} {r.text[:100]}")

        cpu0 = _cpu_seconds(pid)
        result = await _drive(sockets, save, saves, interval, savers)
        cpu = _cpu_seconds(pid) - cpu0
    print(f"  floor server CPU while saving: {cpu / (saves * sessions) * 1000:.1f} ms per save",
          flush=True)  # fmt: skip
    for row in sockets:
        for ws in row:
            await ws.close()
    return result


def _report(name: str, latencies: list[float], missed: int) -> tuple[float, float]:
    if not latencies:
        print(f"  {name:<34} no updates received (missed {missed})")
        return float("nan"), float("nan")
    p50 = _percentile(latencies, 0.50) * 1000
    p99 = _percentile(latencies, 0.99) * 1000
    mean = statistics.fmean(latencies) * 1000
    print(
        f"  {name:<34} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   mean {mean:7.1f} ms"
        f"   updates {len(latencies)}   missed {missed}"
    )
    return p50, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--participants", type=int, default=12)
    parser.add_argument("--saves", type=int, default=10, help="saves per session")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between saves")
    parser.add_argument("--database", default="", help="default: a fresh SQLite file")
    parser.add_argument(
        "--mixed",
        action="store_true",
        help="the parent and the youth at each table, two experts in English (6 views, not 2)",
    )
    args = parser.parse_args()
    savers = args.participants - (len(FAMILY) if args.mixed else 0)

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite+aiosqlite:///{tmp}/bench.db"
        keys = _setup.fresh_keys()
        print(
            f"seeding {args.sessions} sessions x {args.participants} participants"
            f" on {url.split(':')[0]} ...",
            flush=True,
        )
        tables = asyncio.run(seed(url, keys, args.sessions, args.participants, mixed=args.mixed))

        port = _free_port()
        env = {
            **os.environ,
            **keys,
            "KEERPUNT_DATABASE_URL": url,
            "KEERPUNT_BASE_URL": f"http://127.0.0.1:{port}",
            "KEERPUNT_DEMO": "0",
        }
        server = _start(
            [
                sys.executable,
                "-c",
                "from keerpunt.platform.cli import main; main()",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env,
            _port_open(port),
            f"{tmp}/server.log",
        )
        try:
            app = asyncio.run(
                measure_keerpunt(tables, port, args.saves, args.interval, server.pid, savers)
            )
        finally:
            _stop(server)
        with open(f"{tmp}/server.log") as f:
            errors = f.read().count("Traceback")
        if errors:
            print(f"  the server logged {errors} errors (tracebacks)", flush=True)

        fport = _free_port()
        floor_url = args.database or f"sqlite+aiosqlite:///{tmp}/floor.db"
        floor = _start(
            [sys.executable, os.path.join(os.path.dirname(__file__), "_floor_server.py"),
             str(fport), floor_url],
            dict(os.environ),
            _port_open(fport),
            f"{tmp}/floor.log",
        )  # fmt: skip
        try:
            least = asyncio.run(
                measure_floor(
                    args.sessions, args.participants, fport, args.saves, args.interval, savers,
                    floor.pid,
                )
            )  # fmt: skip
        finally:
            _stop(floor)

        bport = _free_port()
        bare = _start(
            [sys.executable, "-c", BASELINE_SERVER, str(bport)],
            dict(os.environ),
            _port_open(bport),
            f"{tmp}/baseline.log",
        )
        try:
            base = asyncio.run(
                measure_baseline(
                    args.sessions, args.participants, bport, args.saves, args.interval, savers
                )
            )
        finally:
            _stop(bare)

    print(
        f"{args.sessions} sessions x {args.participants} participants,"
        f" {args.saves} saves per session every {args.interval:g} s"
        f" ({args.sessions / args.interval:.1f} saves/s), database {url.split(':')[0]}"
        + (", mixed tables (family, English)" if args.mixed else "")
    )
    print("save -> every other participant's update:")
    _, app_p99 = _report("Keerpunt (save, render, push)", *app)
    _f50, f99 = _report("floor (HTTP save, commit, push)", *least)
    _b50, b99 = _report("baseline (bare websocket broadcast)", *base)
    print(f"  p99 ratio: {app_p99 / b99:.1f}x baseline   target: p99 < 250 ms and within 4x")
    print(
        f"  the floor alone is {f99 / b99:.1f}x the baseline; Keerpunt is {app_p99 / f99:.1f}x"
        " the floor (what login, consent, audit and drawing each view add)"
    )


if __name__ == "__main__":
    main()
