"""An asyncio ESME session: one long-lived bind_transceiver, kept up, with an enforced window.

Shape (see the connector research notes for why no library fits):

* One background task per session runs connect -> bind -> serve -> reconnect with backoff and
  jitter. Per connection, one reader task frames PDUs and resolves response futures by sequence
  number; it never awaits a handler, because a reader stuck behind a slow handler turns into
  response timeouts, and timeouts into duplicates.
* ``slot()`` is the window: a semaphore of ``window`` slots. The connector holds a slot across
  ``submit`` *and* its database write of the answer, so at most ``window`` PDUs are ever
  written-but-not-recorded; that bounds the duplicates a crash can cause.
* Throttling (ESME_RTHROTTLED / ESME_RMSGQFUL) slows the whole bind down (AIMD: a pause that
  doubles, a lower effective window and rate that recover on successes) and the session
  resubmits the same PDU itself: a throttled PDU was not accepted, so resending is no duplicate.
* deliver_sm (receipts, MO) runs in bounded background tasks; deliver_sm_resp goes out only after
  ``on_deliver`` returned (after the connector committed), with the status it returned, so a crash
  before the commit means the SMSC redelivers rather than a receipt being lost.

``SubmitAnswer.kind`` tells the caller what is known about the PDU:

* ``ok``: accepted, ``message_id`` is the SMSC's id.
* ``throttled``: throttled until ``throttle_give_up_seconds`` passed; not accepted.
* ``transient``: refused with a retryable status (system error, temporary app error, generic_nack).
* ``permanent``: refused with any other status; ``error`` is the status name.
* ``unknown``: written, but no answer (timeout or connection lost); it may have been accepted.
* ``not_sent``: never written; safe to send elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal

from rcsgate.connectors.smpp.pdu import (
    BindFields,
    Command,
    FrameError,
    Pdu,
    SmFields,
    Status,
    decode_message_id,
    decode_sm,
    encode,
    encode_bind,
    encode_sm,
    read_pdu,
    status_name,
)
from rcsgate.logging_setup import get_logger

__all__ = ["SessionSettings", "SmppSession", "SubmitAnswer"]

AnswerKind = Literal["ok", "throttled", "transient", "permanent", "unknown", "not_sent"]

_MAX_SEQUENCE: Final = 0x7FFFFFFF
_RESPONSE_BIT: Final = 0x80000000
_THROTTLE_STATUSES: Final = frozenset({Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL})
_TRANSIENT_STATUSES: Final = frozenset({Status.ESME_RSYSERR, Status.ESME_RX_T_APPN})
# deliver_sm handlers running at once. Beyond this the SMSC gets ESME_RX_T_APPN at once and
# redelivers later: the reader must not wait, and queueing without bound would only move the
# problem into memory.
_MAX_DELIVER_TASKS: Final = 64
# Back-pressure from deliver_sm (see SmppSession.deliver_room): new submits wait while this many are
# being handled, and for _DELIVER_PAUSE seconds after one was refused.
_DELIVER_BACKLOG: Final = 48
_DELIVER_PAUSE: Final = 0.2
# Await drain() only past this much unsent data: a drain per PDU costs more than the write.
_DRAIN_ABOVE: Final = 64 * 1024
# A peer that sends requests but never reads our answers is dropped past this much backlog.
_MAX_WRITE_BUFFER: Final = 4 * 1024 * 1024
_EMPTY_C_STRING: Final = b"\0"

# AIMD on throttling: the first throttle answer after a cut pauses the bind for _PAUSE_MIN,
# doubling per further cut up to _PAUSE_MAX, and halves the window/rate factor (down to
# _MIN_FACTOR). Every success adds a little back; the pause length resets once fully recovered.
_PAUSE_MIN: Final = 0.1
_PAUSE_MAX: Final = 5.0
_MIN_FACTOR: Final = 1 / 16

# Bound on waiting for unbind_resp when stopping: we are leaving either way.
_UNBIND_WAIT: Final = 1.0


@dataclass(frozen=True, slots=True)
class SessionSettings:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    window: int = 10  # max outstanding submit_sm PDUs
    rate: float | None = None  # max submit_sm PDUs per second (segments, not messages); None = no limit
    enquire_link_seconds: float = 30.0
    response_timeout: float = 30.0
    connect_timeout: float = 5.0
    reconnect_min: float = 1.0
    reconnect_max: float = 30.0
    throttle_give_up_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive or None")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise ValueError("need 0 < reconnect_min <= reconnect_max")

    def __repr__(self) -> str:
        # The password must never reach a log line through a repr.
        return (
            f"SessionSettings(host={self.host!r}, port={self.port}, system_id={self.system_id!r}, "
            f"window={self.window}, rate={self.rate})"
        )


@dataclass(frozen=True, slots=True)
class SubmitAnswer:
    kind: AnswerKind
    message_id: str | None = None
    status: int = 0
    error: str | None = None  # the status name, or what happened


class _ConnectionLost(Exception):
    """Fails the futures of a connection that is gone."""


class _BindRejected(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status_name(status))
        self.status = status


class _Aimd:
    """Additive-increase / multiplicative-decrease of the bind's sending speed under throttling.

    One cut per round trip: a throttle answer to a PDU that was written before the last cut is
    part of the burst that caused it, so it neither cuts again nor lengthens the pause.
    """

    __slots__ = ("_last_cut", "_step", "factor", "pause", "pause_until")

    def __init__(self, window: int) -> None:
        self.factor = 1.0
        self.pause = 0.0
        self.pause_until = 0.0
        self._last_cut = float("-inf")
        # A full window's worth of successes after each cut gives back a quarter of the range.
        self._step = 1 / (4 * window)

    def on_throttle(self, sent_at: float, now: float) -> bool:
        if sent_at < self._last_cut:
            return False
        self._last_cut = now
        self.factor = max(self.factor / 2, _MIN_FACTOR)
        self.pause = min(max(self.pause * 2, _PAUSE_MIN), _PAUSE_MAX)
        self.pause_until = now + self.pause
        return True

    def on_success(self) -> bool:
        """Recover a step; True when the factor changed (waiters may get a turn)."""
        if self.factor >= 1.0:
            return False
        self.factor = min(1.0, self.factor + self._step)
        if self.factor >= 1.0:
            self.pause = 0.0
        return True


class _Connection:
    """One TCP connection and the state that dies with it.

    PDUs are gathered and written once per event loop iteration: a window of submit_sm, or the
    deliver_sm_resp of a batch of receipts, is one write (one system call) instead of one each.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.pending: dict[int, asyncio.Future[Pdu]] = {}
        self.closed = False
        self.last_rx = time.monotonic()
        self._out: list[bytes] = []
        self._out_size = 0

    @property
    def usable(self) -> bool:
        return not self.closed and not self.transport.is_closing()

    def send(self, pdu: Pdu) -> bool:
        """Write without waiting; False if the connection is already gone (nothing written)."""
        if not self.usable:
            return False
        data = encode(pdu)
        if not self._out:
            asyncio.get_running_loop().call_soon(self.flush)
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size > _DRAIN_ABOVE:
            self.flush()  # large enough to go now (and for the caller to see in the buffer size)
        return True

    def flush(self) -> None:
        """Hand what was gathered to the transport (a no-op when there is nothing, or no connection)."""
        if not self._out:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        if self.closed or self.transport.is_closing():
            return  # gone meanwhile: as if the transport had dropped it unsent
        self.writer.write(data)
        if self.transport.get_write_buffer_size() > _MAX_WRITE_BUFFER:
            self.abort()

    def abort(self) -> None:
        self.closed = True
        self._out.clear()
        self._out_size = 0
        self.transport.abort()

    def fail_pending(self) -> None:
        self.closed = True
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(_ConnectionLost())


def _expire(future: asyncio.Future[Pdu]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class SmppSession:
    def __init__(
        self,
        settings: SessionSettings,
        *,
        on_deliver: Callable[[SmFields], Awaitable[int]],
        name: str = "smpp",
    ) -> None:
        self.settings = settings
        self.name = name
        self.bound_event = asyncio.Event()
        self._on_deliver = on_deliver
        self._log = get_logger("rcsgate.smpp").bind(
            connector=name, host=settings.host, port=settings.port, system_id=settings.system_id
        )
        self._slots = asyncio.Semaphore(settings.window)
        self._aimd = _Aimd(settings.window)
        self._conn: _Connection | None = None
        self._sequence = 0
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped: asyncio.Future[None] | None = None
        # Submits past the effective-window gate (written, or about to be); and those waiting.
        self._inflight = 0
        self._turn_waiters: deque[asyncio.Future[None]] = deque()
        # Rate limiting by virtual scheduling (GCRA): the time the next PDU may go out.
        self._next_send = 0.0
        self._deliver_tasks: set[asyncio.Task[None]] = set()
        # Set while new submits may go (see deliver_room); cleared by a deliver_sm backlog.
        self._deliver_room = asyncio.Event()
        self._deliver_room.set()
        self._deliver_paused: asyncio.TimerHandle | None = None

    # --- public ---------------------------------------------------------------------------------

    @property
    def bound(self) -> bool:
        return self.bound_event.is_set()

    async def start(self) -> None:
        """Start the connect/bind/serve/reconnect loop in the background; returns at once."""
        if self._runner is not None:
            return
        self._stopped = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._run(), name=f"smpp-session-{self.name}")

    async def stop(self, *, drain_seconds: float = 5.0) -> None:
        """Stop taking submits, wait (bounded) for answers in flight, unbind and close."""
        if self._stopping:
            return
        self._stopping = True
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)
        # Nothing new is written from here on (submits check _stopping right before writing), so
        # the answers to wait for are the ones pending now, plus receipts being recorded.
        conn = self._conn
        waiting: list[asyncio.Future[Pdu] | asyncio.Task[None]] = [*self._deliver_tasks]
        if conn is not None:
            waiting.extend(conn.pending.values())
        if waiting:
            await asyncio.wait(waiting, timeout=drain_seconds)
        conn = self._conn
        if conn is not None and conn.usable:
            with contextlib.suppress(Exception):
                await self._request(
                    conn, Pdu(Command.UNBIND, 0, 0), min(_UNBIND_WAIT, self.settings.response_timeout)
                )
        for task in list(self._deliver_tasks):
            task.cancel()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._deliver_tasks:
            await asyncio.gather(*self._deliver_tasks, return_exceptions=True)
        self._log.info("smpp_session_stopped")

    def slot(self) -> contextlib.AbstractAsyncContextManager[None]:
        """One window slot. Hold it across ``submit(..., slot_held=True)`` and recording the answer."""
        return self._slots

    async def submit(
        self, fields: SmFields, *, slot_held: bool = False, may_write: Callable[[], bool] | None = None
    ) -> SubmitAnswer:
        """Send one submit_sm and classify the answer (see the module docstring). ``may_write`` is
        asked right before the PDU is written (after the waits for the window and the pace): False
        answers `not_sent` (the claim may no longer be this process's, see dispatch/liveness.py)."""
        try:
            body = encode_sm(fields)
        except ValueError as exc:
            return SubmitAnswer("permanent", status=0, error=f"invalid submit_sm: {exc}")
        if slot_held:
            return await self._submit(body, may_write)
        async with self._slots:
            return await self._submit(body, may_write)

    # --- submit ---------------------------------------------------------------------------------

    async def _submit(self, body: bytes, may_write: Callable[[], bool] | None = None) -> SubmitAnswer:
        settings = self.settings
        loop = asyncio.get_running_loop()
        throttled: Pdu | None = None
        give_up_at = 0.0
        while True:
            conn = await self._ready_connection()
            if conn is None:
                if throttled is not None:
                    return self._throttled_answer(throttled, "not bound")
                return SubmitAnswer("not_sent", error="stopping" if self._stopping else "not bound")
            await self._deliver_room.wait()
            await self._take_turn()
            try:
                if not await self._pace():
                    if throttled is not None:
                        return self._throttled_answer(throttled, "stopping")
                    return SubmitAnswer("not_sent", error="stopping")
                if not conn.usable or self._conn is not conn:
                    continue  # dropped while we waited: nothing written, wait for the rebind
                if may_write is not None and not may_write():
                    return SubmitAnswer("not_sent", error="claim no longer held")
                sent_at = loop.time()
                try:
                    response = await self._request(
                        conn, Pdu(Command.SUBMIT_SM, 0, 0, body), settings.response_timeout
                    )
                except TimeoutError:
                    self._log.warning("smpp_submit_timeout", timeout=settings.response_timeout)
                    return SubmitAnswer("unknown", error="no response")
                except _ConnectionLost:
                    return SubmitAnswer("unknown", error="connection lost")
            finally:
                self._release_turn()
            status = response.status
            if response.command == Command.SUBMIT_SM_RESP and status == Status.ESME_ROK:
                if self._aimd.on_success():
                    self._wake_turns()
                return SubmitAnswer("ok", message_id=decode_message_id(response.body))
            if response.command == Command.GENERIC_NACK:
                return SubmitAnswer("transient", status=status, error=f"generic_nack {status_name(status)}")
            if response.command != Command.SUBMIT_SM_RESP:
                # An answer of the wrong type to our sequence number: the SMSC is confused, and
                # whether it took the message is anyone's guess.
                return SubmitAnswer(
                    "unknown", status=status, error=f"unexpected response {response.command:#010x}"
                )
            if status in _THROTTLE_STATUSES:
                now = loop.time()
                if throttled is None:
                    give_up_at = now + settings.throttle_give_up_seconds
                throttled = response
                if self._aimd.on_throttle(sent_at, now):
                    self._log.warning(
                        "smpp_throttled",
                        status=status_name(status),
                        pause=self._aimd.pause,
                        factor=self._aimd.factor,
                    )
                if now >= give_up_at:
                    return self._throttled_answer(response, status_name(status))
                continue
            if status in _TRANSIENT_STATUSES:
                return SubmitAnswer("transient", status=status, error=status_name(status))
            return SubmitAnswer("permanent", status=status, error=status_name(status))

    @staticmethod
    def _throttled_answer(response: Pdu, error: str) -> SubmitAnswer:
        return SubmitAnswer("throttled", status=response.status, error=error)

    async def _ready_connection(self) -> _Connection | None:
        """The bound connection, waiting up to connect_timeout for a bind; None if there is none."""
        conn = self._conn
        if self._stopping:
            return None
        if conn is not None and conn.usable:
            return conn
        stopped = self._stopped
        if stopped is None:
            return None  # never started
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.connect_timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            if self.bound_event.is_set():
                # The transport is closing but the reader has not noticed yet: the event clears
                # in a moment, then waiting for the next bind works.
                await self._sleep(min(0.01, remaining))
            else:
                waiter = asyncio.ensure_future(self.bound_event.wait())
                try:
                    await asyncio.wait((waiter, stopped), timeout=remaining, return_when="FIRST_COMPLETED")
                finally:
                    waiter.cancel()
            conn = self._conn
            if self._stopping:
                return None
            if conn is not None and conn.usable:
                return conn

    async def _take_turn(self) -> None:
        """Pass the effective-window gate, which AIMD may have set below ``window``."""
        if self._inflight < self._effective_window() and not self._turn_waiters:
            self._inflight += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._turn_waiters.append(future)
        try:
            await future  # the releaser counted us in before waking us
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release_turn()
            else:
                with contextlib.suppress(ValueError):
                    self._turn_waiters.remove(future)
            raise

    def _release_turn(self) -> None:
        self._inflight -= 1
        self._wake_turns()

    def _wake_turns(self) -> None:
        window = self._effective_window()
        while self._turn_waiters and self._inflight < window:
            future = self._turn_waiters.popleft()
            if not future.done():
                self._inflight += 1
                future.set_result(None)

    def _effective_window(self) -> int:
        return max(1, int(self.settings.window * self._aimd.factor))

    async def _pace(self) -> bool:
        """Wait out a throttle pause and the rate limit; False if the session is stopping."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now < self._aimd.pause_until and not await self._sleep(self._aimd.pause_until - now):
            return False
        rate = self.settings.rate
        if rate is not None:
            interval = 1.0 / (rate * self._aimd.factor)
            # Virtual scheduling with a burst tolerance of 50 ms worth of PDUs, so timer jitter
            # does not cost throughput while no second ever carries more than rate + that burst.
            now = loop.time()
            send_at = max(self._next_send, now - 0.05)
            self._next_send = send_at + interval
            if send_at > now and not await self._sleep(send_at - now):
                return False
        return not self._stopping

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, cut short by stop(); False if the session is stopping."""
        if self._stopped is None or self._stopping:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._stopped), seconds)
        return not self._stopping

    def _written(self) -> int:
        conn = self._conn
        return len(conn.pending) if conn is not None else 0

    # --- requests and responses -----------------------------------------------------------------

    def _next_sequence(self, conn: _Connection) -> int:
        sequence = self._sequence
        while True:
            sequence = sequence % _MAX_SEQUENCE + 1
            if sequence not in conn.pending:
                self._sequence = sequence
                return sequence

    async def _request(self, conn: _Connection, pdu: Pdu, wait: float) -> Pdu:
        """Write a request and wait for the response with its sequence number.

        TimeoutError after ``wait`` seconds; _ConnectionLost if the connection cannot be written to or
        goes away first. The caller knows it was written unless it got _ConnectionLost before
        anything happened, which only ``conn.usable`` being false beforehand can cause.
        """
        if not conn.usable:
            raise _ConnectionLost()
        loop = asyncio.get_running_loop()
        pdu.sequence = self._next_sequence(conn)
        future: asyncio.Future[Pdu] = loop.create_future()
        conn.pending[pdu.sequence] = future
        timer = loop.call_later(wait, _expire, future)
        try:
            conn.send(pdu)
            if conn.transport.get_write_buffer_size() > _DRAIN_ABOVE:
                try:
                    await conn.writer.drain()
                except ConnectionError:
                    conn.abort()
                    raise _ConnectionLost() from None
            return await future
        finally:
            timer.cancel()
            if conn.pending.get(pdu.sequence) is future:
                del conn.pending[pdu.sequence]

    async def _read_loop(self, conn: _Connection) -> str:
        """Frame PDUs until the connection ends; returns why it ended."""
        reader = conn.reader
        pending = conn.pending
        while True:
            try:
                pdu = await read_pdu(reader)
            except asyncio.IncompleteReadError:
                return "closed by SMSC"
            except OSError as exc:
                return f"connection error: {exc!r}"
            except FrameError as exc:
                self._log.error("smpp_bad_frame", error=str(exc))
                return f"bad frame: {exc}"
            conn.last_rx = time.monotonic()
            command = pdu.command
            if command & _RESPONSE_BIT:
                future = pending.pop(pdu.sequence, None)
                if future is not None:
                    if not future.done():
                        future.set_result(pdu)
                elif command == Command.GENERIC_NACK:
                    self._log.warning(
                        "smpp_generic_nack", status=status_name(pdu.status), sequence=pdu.sequence
                    )
                elif command == Command.SUBMIT_SM_RESP:
                    # Its submit already answered "unknown"; the id lets an operator reconcile.
                    self._log.warning(
                        "smpp_late_submit_sm_resp",
                        status=status_name(pdu.status),
                        message_id=decode_message_id(pdu.body),
                        sequence=pdu.sequence,
                    )
                else:
                    self._log.info("smpp_late_response", command=f"{command:#010x}", sequence=pdu.sequence)
            elif command == Command.DELIVER_SM:
                self._start_deliver(conn, pdu)
            elif command == Command.ENQUIRE_LINK:
                conn.send(Pdu(Command.ENQUIRE_LINK_RESP, 0, pdu.sequence))
            elif command == Command.UNBIND:
                conn.send(Pdu(Command.UNBIND_RESP, 0, pdu.sequence))
                return "unbound by SMSC"
            else:
                conn.send(Pdu(Command.GENERIC_NACK, Status.ESME_RINVCMDID, pdu.sequence))

    # --- deliver_sm -------------------------------------------------------------------------------

    async def deliver_room(self) -> None:
        """Wait until new submits may go as far as deliver_sm are concerned (every submit does). An SMSC that sends
        receipts apart from its answers, without a window of its own, could otherwise be fed
        submits faster than their receipts are written; past _MAX_DELIVER_TASKS it gets
        ESME_RX_T_APPN and delivers them again seconds later, each refusal more work. So submits
        wait while _DELIVER_BACKLOG deliver_sm are being handled, and for _DELIVER_PAUSE after a
        refusal."""
        await self._deliver_room.wait()

    def _update_deliver_room(self) -> None:
        if self._deliver_paused is None and len(self._deliver_tasks) < _DELIVER_BACKLOG:
            self._deliver_room.set()
        else:
            self._deliver_room.clear()

    def _end_deliver_pause(self) -> None:
        self._deliver_paused = None
        self._update_deliver_room()

    def _deliver_done(self, task: asyncio.Task[None]) -> None:
        self._deliver_tasks.discard(task)
        self._update_deliver_room()

    def _start_deliver(self, conn: _Connection, pdu: Pdu) -> None:
        if len(self._deliver_tasks) >= _MAX_DELIVER_TASKS:
            self._log.warning("smpp_deliver_backlog", running=len(self._deliver_tasks))
            conn.send(Pdu(Command.DELIVER_SM_RESP, Status.ESME_RX_T_APPN, pdu.sequence, _EMPTY_C_STRING))
            if self._deliver_paused is not None:
                self._deliver_paused.cancel()
            self._deliver_paused = asyncio.get_running_loop().call_later(
                _DELIVER_PAUSE, self._end_deliver_pause
            )
            self._update_deliver_room()
            return
        task = asyncio.create_task(self._deliver(conn, pdu))
        self._deliver_tasks.add(task)
        task.add_done_callback(self._deliver_done)
        self._update_deliver_room()

    async def _deliver(self, conn: _Connection, pdu: Pdu) -> None:
        try:
            fields = decode_sm(pdu.body)
        except FrameError as exc:
            # Redelivering the same bytes would fail the same way.
            self._log.error("smpp_bad_deliver_sm", error=str(exc), length=len(pdu.body))
            status = int(Status.ESME_RX_P_APPN)
        else:
            try:
                status = int(await self._on_deliver(fields))
            except Exception:
                self._log.exception("smpp_deliver_handler_failed")
                status = int(Status.ESME_RX_T_APPN)
        if not conn.send(Pdu(Command.DELIVER_SM_RESP, status, pdu.sequence, _EMPTY_C_STRING)):
            # The SMSC will redeliver it on a new bind; the handler must be idempotent anyway.
            self._log.info("smpp_deliver_resp_not_sent", reason="connection gone")

    # --- connection lifecycle ---------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                conn = await self._connect_and_bind()
            except _BindRejected as exc:
                # Credentials or account trouble rarely fix themselves in a second: back off harder.
                attempt += 2
                self._log.error("smpp_bind_rejected", status=str(exc))
                await self._sleep(self._backoff(attempt))
                continue
            except (OSError, TimeoutError, FrameError, asyncio.IncompleteReadError) as exc:
                attempt += 1
                self._log.warning("smpp_connect_failed", error=repr(exc), attempt=attempt)
                await self._sleep(self._backoff(attempt))
                continue
            bound_at = loop.time()
            self._log.info("smpp_bound")
            reason = await self._serve(conn)
            if self._stopping:
                self._log.info("smpp_connection_closed", reason=reason)
            else:
                self._log.warning("smpp_connection_lost", reason=reason)
            # A bind that keeps dropping right away must not become a reconnect storm.
            attempt = 1 if loop.time() - bound_at >= self.settings.reconnect_max else attempt + 1
            if not self._stopping:
                await self._sleep(self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.settings.reconnect_max, self.settings.reconnect_min * 2 ** max(0, attempt - 1))
        # Jitter spreads the reconnects of many sessions after a shared outage.
        return random.uniform(ceiling / 2, ceiling)

    async def _connect_and_bind(self) -> _Connection:
        settings = self.settings
        async with asyncio.timeout(settings.connect_timeout):
            reader, writer = await asyncio.open_connection(settings.host, settings.port)
        conn = _Connection(reader, writer)
        try:
            body = encode_bind(BindFields(settings.system_id, settings.password, settings.system_type))
            sequence = self._next_sequence(conn)
            conn.send(Pdu(Command.BIND_TRANSCEIVER, 0, sequence, body))
            async with asyncio.timeout(settings.response_timeout):
                while True:
                    pdu = await read_pdu(reader)
                    if pdu.sequence == sequence and pdu.command in (
                        Command.BIND_TRANSCEIVER_RESP,
                        Command.GENERIC_NACK,
                    ):
                        break
                    if pdu.command == Command.ENQUIRE_LINK:
                        conn.send(Pdu(Command.ENQUIRE_LINK_RESP, 0, pdu.sequence))
                    # Anything else before the bind is answered is out of order: ignore it.
            if pdu.status != Status.ESME_ROK:
                raise _BindRejected(pdu.status)
        except BaseException:
            conn.abort()
            raise
        return conn

    async def _serve(self, conn: _Connection) -> str:
        self._conn = conn
        self.bound_event.set()
        reader_task = asyncio.create_task(self._read_loop(conn), name=f"smpp-reader-{self.name}")
        keepalive = asyncio.create_task(self._keep_alive(conn), name=f"smpp-keepalive-{self.name}")
        try:
            return await reader_task
        finally:
            self.bound_event.clear()
            self._conn = None
            keepalive.cancel()
            reader_task.cancel()
            conn.flush()  # e.g. an unbind_resp, or deliver_sm_resp of receipts just committed
            conn.fail_pending()
            conn.writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(conn.writer.wait_closed(), 1.0)
            conn.transport.abort()

    async def _keep_alive(self, conn: _Connection) -> None:
        """enquire_link after enquire_link_seconds without traffic from the SMSC; drop if unanswered."""
        interval = self.settings.enquire_link_seconds
        while conn.usable:
            idle = time.monotonic() - conn.last_rx
            if idle < interval:
                await asyncio.sleep(interval - idle)
                continue
            try:
                await self._request(conn, Pdu(Command.ENQUIRE_LINK, 0, 0), self.settings.response_timeout)
            except TimeoutError:
                self._log.warning("smpp_enquire_link_timeout")
                conn.abort()
                return
            except _ConnectionLost:
                return
