"""The fake SMSC (connectors/smpp/fake_smsc.py) driven by a minimal raw ESME built on pdu.py:
binds, submit_sm answered with an id and followed by a receipt, each fault switch, redelivery of
unacked receipts, receipts waiting for a receiver, MOs, the pipeline not being serialised by
latency, and the module's command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from rcsgate.connectors.smpp.encoding import decode_text
from rcsgate.connectors.smpp.fake_smsc import FakeSmsc
from rcsgate.connectors.smpp.pdu import (
    BindFields,
    Command,
    Pdu,
    SmFields,
    Status,
    decode_message_id,
    decode_sm,
    encode,
    encode_bind,
    encode_sm,
    read_pdu,
)
from rcsgate.connectors.smpp.receipts import is_receipt, normalise_id, parse_receipt

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(main())


class Esme:
    """Just enough of an ESME to poke the fake: nothing is sent or acked unless a test says so."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.sequence = 0

    @classmethod
    async def connect(cls, port: int) -> Esme:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(
        self, command: int, body: bytes = b"", *, status: int = 0, sequence: int | None = None
    ) -> int:
        if sequence is None:
            self.sequence += 1
            sequence = self.sequence
        self.writer.write(encode(Pdu(command, status, sequence, body)))
        await self.writer.drain()
        return sequence

    async def recv(self, timeout: float = 2.0) -> Pdu:
        return await asyncio.wait_for(read_pdu(self.reader), timeout)

    async def nothing(self, timeout: float = 0.2) -> None:
        with pytest.raises(TimeoutError):
            await self.recv(timeout)

    async def eof(self, timeout: float = 2.0) -> None:
        with pytest.raises(asyncio.IncompleteReadError):
            await self.recv(timeout)

    async def bind(self, command: int = Command.BIND_TRANSCEIVER) -> Pdu:
        sequence = await self.send(command, encode_bind(BindFields("esme", "secret")))
        resp = await self.recv()
        assert (resp.command, resp.sequence) == (command | 0x80000000, sequence)
        return resp

    async def submit(
        self, destination: str = "447700900001", text: bytes = b"hello", *, registered_delivery: int = 1
    ) -> int:
        fields = SmFields(
            source_addr="RCSGATE",
            destination_addr=destination,
            registered_delivery=registered_delivery,
            short_message=text,
        )
        return await self.send(Command.SUBMIT_SM, encode_sm(fields))

    async def ack(self, pdu: Pdu, status: int = 0) -> None:
        await self.send(Command.DELIVER_SM_RESP, b"\0", status=status, sequence=pdu.sequence)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def fake(**options: Any) -> AsyncIterator[FakeSmsc]:
    smsc = FakeSmsc(**options)
    await smsc.start()
    try:
        yield smsc
    finally:
        await smsc.stop()


@contextlib.asynccontextmanager
async def bound(smsc: FakeSmsc, command: int = Command.BIND_TRANSCEIVER) -> AsyncIterator[Esme]:
    esme = await Esme.connect(smsc.port)
    try:
        await esme.bind(command)
        yield esme
    finally:
        await esme.close()


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# --- the happy path ----------------------------------------------------------------------------


def test_bind_submit_response_and_receipt() -> None:
    async def main() -> None:
        async with fake(first_id=0x1A2B) as smsc, bound(smsc) as esme:
            sequence = await esme.submit(text=b"Hello there")
            resp = await esme.recv()
            assert (resp.command, resp.status, resp.sequence) == (Command.SUBMIT_SM_RESP, 0, sequence)
            message_id = decode_message_id(resp.body)
            assert re.fullmatch(r"0{4}1a2b", message_id, re.I)

            deliver = await esme.recv()
            assert deliver.command == Command.DELIVER_SM
            fields = decode_sm(deliver.body)
            assert is_receipt(fields)
            assert (fields.source_addr, fields.destination_addr) == ("447700900001", "RCSGATE")
            receipt = parse_receipt(fields)
            assert receipt is not None
            assert (receipt.smsc_id, receipt.stat, receipt.err, receipt.outcome) == (
                message_id,
                "DELIVRD",
                "000",
                "delivered",
            )
            text = fields.short_message.decode()
            assert re.fullmatch(
                r"id:1a2b sub:001 dlvrd:001 submit date:\d{10} done date:\d{10} stat:DELIVRD err:000 "
                r"text:Hello there",
                text,
            )
            assert smsc.pending_receipts() == 1
            await esme.ack(deliver)
            await until(lambda: smsc.receipts_acked == 1)
            assert smsc.pending_receipts() == 0

            [record] = smsc.submits
            assert (record.bind, record.sequence, record.message_id) == (1, sequence, message_id)
            assert (record.destination_addr, record.short_message) == ("447700900001", b"Hello there")
            assert smsc.stats() == {
                "submits": 1,
                "duplicates": 0,
                "receipts_sent": 1,
                "receipts_acked": 1,
                "pending_receipts": 0,
                "max_outstanding": 1,
                "mo_sent": 0,
                "mo_acked": 0,
            }

    run(main)


def test_id_formats_need_normalising() -> None:
    async def main() -> None:
        for id_format, pattern, base in [
            ("hex", r"[0-9A-F]{8}|[0-9a-f]{8}", "hex"),
            ("dec", r"0\d{9}", "dec"),
        ]:
            # Ids with hex letters (the clock-seeded default may give all digits, whose case cannot
            # alternate).
            first_id = 0xABCDEF0
            async with (
                fake(id_format=id_format, receipt_tlvs=False, first_id=first_id) as smsc,
                bound(smsc) as esme,
            ):
                ids: list[str] = []
                for _ in range(2):
                    await esme.submit()
                    ids.append(decode_message_id((await esme.recv()).body))
                    receipt = parse_receipt(decode_sm((await esme.recv()).body))
                    assert receipt is not None
                    # The text id is the same number written differently: unpadded, lower case.
                    assert receipt.smsc_id != ids[-1]
                    assert normalise_id(receipt.smsc_id, base) == normalise_id(ids[-1], base)  # type: ignore[arg-type]
                    assert normalise_id(receipt.smsc_id) == normalise_id(ids[-1])
                assert all(re.fullmatch(pattern, i) for i in ids), ids
                if id_format == "hex":
                    # Consecutive ids alternate between upper and lower case.
                    assert {i == i.upper() for i in ids} == {True, False}

    run(main)


def test_outcomes_by_destination_and_registered_delivery() -> None:
    async def main() -> None:
        async with fake() as smsc, bound(smsc) as esme:
            for destination, stat, err in [
                ("447700900002", "UNDELIV", "001"),
                ("447700900003", "REJECTD", "001"),
            ]:
                await esme.submit(destination)
                assert (await esme.recv()).command == Command.SUBMIT_SM_RESP
                receipt = parse_receipt(decode_sm((await esme.recv()).body))
                assert receipt is not None
                assert (receipt.stat, receipt.err, receipt.outcome) == (stat, err, "undelivered")

            # registered_delivery 0: no receipt; 2: failures only.
            await esme.submit(registered_delivery=0)
            await esme.submit(registered_delivery=2)
            await esme.submit("447700900002", registered_delivery=2)
            assert [(await esme.recv()).command for _ in range(3)] == [Command.SUBMIT_SM_RESP] * 3
            receipt = parse_receipt(decode_sm((await esme.recv()).body))
            assert receipt is not None and receipt.stat == "UNDELIV"
            await esme.nothing()

        always_expired = fake(outcome=lambda destination: "EXPIRED", honour_registered_delivery=False)
        async with always_expired as smsc, bound(smsc) as esme:
            await esme.submit(registered_delivery=0)
            await esme.recv()
            receipt = parse_receipt(decode_sm((await esme.recv()).body))
            assert receipt is not None and (receipt.stat, receipt.err) == ("EXPIRED", "001")

    run(main)


def test_protocol_basics() -> None:
    async def main() -> None:
        async with fake() as smsc:
            esme = await Esme.connect(smsc.port)
            # Before a bind: enquire_link is fine, submit_sm is refused.
            sequence = await esme.send(Command.ENQUIRE_LINK)
            assert (await esme.recv()) == Pdu(Command.ENQUIRE_LINK_RESP, 0, sequence)
            sequence = await esme.submit()
            assert (await esme.recv()) == Pdu(Command.SUBMIT_SM_RESP, Status.ESME_RINVBNDSTS, sequence)
            resp = await esme.bind(Command.BIND_TRANSMITTER)
            assert resp.status == 0 and decode_message_id(resp.body) == "fake-smsc"
            resp = await esme.bind(Command.BIND_TRANSMITTER)
            assert resp.status == 0x05  # ESME_RALYBND
            sequence = await esme.send(0x00000103)  # data_sm: not supported
            assert (await esme.recv()) == Pdu(Command.GENERIC_NACK, Status.ESME_RINVCMDID, sequence)
            sequence = await esme.send(Command.SUBMIT_SM, encode_sm(SmFields(short_message=b"x")))
            assert (await esme.recv()).status == 0x0B  # no destination
            sequence = await esme.send(Command.UNBIND)
            assert (await esme.recv()) == Pdu(Command.UNBIND_RESP, 0, sequence)
            await esme.eof()
            await esme.close()

            # A receiver cannot submit.
            async with bound(smsc, Command.BIND_RECEIVER) as receiver:
                sequence = await receiver.submit()
                assert (await receiver.recv()).status == Status.ESME_RINVBNDSTS

            # A command_length that cannot be right: generic_nack, then the connection is closed.
            esme = await Esme.connect(smsc.port)
            esme.writer.write(b"\x00\x00\x00\x08\x00\x00\x00\x15\x00\x00\x00\x00\x00\x00\x00\x07")
            assert (await esme.recv()) == Pdu(Command.GENERIC_NACK, Status.ESME_RINVCMDLEN, 7)
            await esme.eof()
            await esme.close()
            assert smsc.submits == []

    run(main)


# --- faults ----------------------------------------------------------------------------------------


def test_status_faults_consume_one_submit_each() -> None:
    async def main() -> None:
        async with fake() as smsc, bound(smsc) as esme:
            faults = smsc.faults
            faults.throttle_next = 1
            faults.queue_full_next = 2
            faults.generic_nack_next = 1
            faults.no_response_next = 1
            faults.error_next = 1
            faults.error_status = 0x0B
            # They apply in the order Faults declares them.
            sequences = [await esme.submit(registered_delivery=0) for _ in range(7)]
            answers = [await esme.recv() for _ in range(6)]
            assert [(p.command, p.status, p.sequence) for p in answers] == [
                (Command.SUBMIT_SM_RESP, Status.ESME_RTHROTTLED, sequences[0]),
                (Command.SUBMIT_SM_RESP, Status.ESME_RMSGQFUL, sequences[1]),
                (Command.SUBMIT_SM_RESP, Status.ESME_RMSGQFUL, sequences[2]),
                (Command.GENERIC_NACK, Status.ESME_RSYSERR, sequences[3]),
                (Command.SUBMIT_SM_RESP, 0x0B, sequences[5]),
                (Command.SUBMIT_SM_RESP, 0, sequences[6]),
            ]
            assert answers[-1].body.endswith(b"\0") and all(a.body == b"" for a in answers[:-1])
            await esme.nothing()  # the swallowed fifth submit is never answered
            assert [r.sequence for r in smsc.submits] == [sequences[6]]

    run(main)


def test_drop_after_loses_the_responses_in_flight() -> None:
    async def main() -> None:
        async with fake(latency=0.3) as smsc:
            async with bound(smsc) as esme:
                smsc.faults.drop_after = 3
                for _ in range(3):
                    await esme.submit()
                # The connection goes as the third arrives; none of the three is answered.
                await esme.eof()
            assert smsc.faults.drop_after is None
            assert len(smsc.submits) == 3  # accepted all the same: their receipts still come
            async with bound(smsc) as esme:
                receipts = [parse_receipt(decode_sm((await esme.recv()).body)) for _ in range(3)]
                assert sorted(r.smsc_id for r in receipts if r is not None) == sorted(
                    s.message_id for s in smsc.submits
                )
                await esme.submit()  # the fault fired once
                assert (await esme.recv(1.0)).command == Command.SUBMIT_SM_RESP

    run(main)


def test_drop_after_counts_accepted_submits() -> None:
    async def main() -> None:
        async with fake() as smsc, bound(smsc) as esme:
            smsc.faults.drop_after = 2
            smsc.faults.throttle_next = 1
            await esme.submit(registered_delivery=0)
            assert (await esme.recv()).status == Status.ESME_RTHROTTLED
            await esme.submit(registered_delivery=0)
            assert (await esme.recv()).status == 0
            await esme.submit(registered_delivery=0)
            await esme.eof()
            assert len(smsc.submits) == 2

    run(main)


def test_unbind_after() -> None:
    async def main() -> None:
        async with fake() as smsc, bound(smsc) as esme:
            smsc.faults.unbind_after = 1
            sequence = await esme.submit(registered_delivery=0)
            assert (await esme.recv()).sequence == sequence
            unbind = await esme.recv()
            assert unbind.command == Command.UNBIND
            # While it unbinds, submits are refused.
            sequence = await esme.submit(registered_delivery=0)
            assert (await esme.recv()) == Pdu(Command.SUBMIT_SM_RESP, Status.ESME_RINVBNDSTS, sequence)
            await esme.send(Command.UNBIND_RESP, sequence=unbind.sequence)
            await esme.eof()
            assert len(smsc.submits) == 1

    run(main)


def test_receipt_before_response() -> None:
    async def main() -> None:
        async with fake(latency=0.05) as smsc, bound(smsc) as esme:
            smsc.faults.receipt_before_response = True
            sequence = await esme.submit()
            first, second = await esme.recv(), await esme.recv()
            assert first.command == Command.DELIVER_SM
            assert (second.command, second.sequence) == (Command.SUBMIT_SM_RESP, sequence)
            receipt = parse_receipt(decode_sm(first.body))
            assert receipt is not None and receipt.smsc_id == decode_message_id(second.body)

    run(main)


def test_receipts_on_other_bind() -> None:
    async def main() -> None:
        async with fake() as smsc, bound(smsc) as sender, bound(smsc, Command.BIND_RECEIVER) as other:
            smsc.faults.receipts_on_other_bind = True
            await sender.submit()
            resp = await sender.recv()
            deliver = await other.recv()
            receipt = parse_receipt(decode_sm(deliver.body))
            assert receipt is not None and receipt.smsc_id == decode_message_id(resp.body)
            await sender.nothing()

    run(main)


def test_bind_refused() -> None:
    async def main() -> None:
        async with fake() as smsc:
            smsc.faults.bind_status = 0x0E  # ESME_RINVPASWD
            esme = await Esme.connect(smsc.port)
            resp = await esme.bind(Command.BIND_TRANSCEIVER)
            assert resp.status == 0x0E
            await esme.eof()
            await esme.close()
            assert smsc.bound_sessions() == 0

    run(main)


# --- receipts that are not acked ----------------------------------------------------------------


def test_unacked_receipt_is_redelivered_until_acked() -> None:
    async def main() -> None:
        async with fake(redeliver_after=0.2) as smsc, bound(smsc) as esme:
            await esme.submit()
            await esme.recv()
            first = await esme.recv()  # not acked
            started = time.monotonic()
            second = await esme.recv()
            assert time.monotonic() - started >= 0.1
            assert second.body == first.body and second.sequence != first.sequence
            await esme.ack(second, status=Status.ESME_RX_T_APPN)  # a refusal is no ack
            third = await esme.recv()
            assert third.body == first.body
            await esme.ack(third)
            await until(lambda: smsc.receipts_acked == 1)
            await esme.nothing(0.4)
            assert (smsc.receipts_sent, smsc.pending_receipts()) == (3, 0)
            await esme.ack(first)  # a late ack of an abandoned copy changes nothing
            await asyncio.sleep(0.05)
            assert smsc.receipts_acked == 1

    run(main)


def test_receipts_wait_for_a_receiver() -> None:
    async def main() -> None:
        async with fake(redeliver_after=0.2) as smsc:
            async with bound(smsc, Command.BIND_TRANSMITTER) as sender:
                await sender.submit()
                await sender.recv()
                await sender.nothing()  # a transmitter gets no deliver_sm
                assert smsc.pending_receipts() == 1
                async with bound(smsc, Command.BIND_RECEIVER) as receiver:
                    deliver = await receiver.recv()
                    assert is_receipt(decode_sm(deliver.body))
            # Connection gone before the ack: it comes again on the next bind.
            async with bound(smsc, Command.BIND_TRANSCEIVER) as esme:
                again = await esme.recv()
                assert again.body == deliver.body
                await esme.ack(again)
                await until(lambda: smsc.pending_receipts() == 0)

    run(main)


def test_receipt_delay() -> None:
    async def main() -> None:
        async with fake(receipt_delay=0.3) as smsc, bound(smsc) as esme:
            await esme.submit()
            await esme.recv()
            started = time.monotonic()
            await esme.recv()
            assert time.monotonic() - started >= 0.25

    run(main)


# --- MOs -------------------------------------------------------------------------------------------


def test_send_mo() -> None:
    async def main() -> None:
        async with fake() as smsc, bound(smsc) as esme:
            await smsc.send_mo("447700900001", "RCSGATE", "Привет")
            deliver = await esme.recv()
            fields = decode_sm(deliver.body)
            assert not is_receipt(fields) and parse_receipt(fields) is None
            assert (fields.source_addr, fields.destination_addr) == ("447700900001", "RCSGATE")
            assert (
                decode_text(fields.data_coding, fields.short_message, esm_class=fields.esm_class) == "Привет"
            )
            await esme.ack(deliver)

            long_text = "x" * 200
            await smsc.send_mo("447700900001", "RCSGATE", long_text)
            parts = [decode_sm((await esme.recv()).body) for _ in range(2)]
            assert all(p.esm_class == 0x40 for p in parts)
            assert (
                "".join(decode_text(p.data_coding, p.short_message, esm_class=0x40) for p in parts)
                == long_text
            )
            await until(lambda: smsc.mo_acked == 1)
            assert smsc.mo_sent == 3

    run(main)


# --- window, latency, duplicates -----------------------------------------------------------------


def test_latency_does_not_serialise_and_outstanding_is_measured() -> None:
    async def main() -> None:
        async with fake(latency=0.2) as smsc, bound(smsc) as esme:
            started = time.monotonic()
            sequences = [await esme.submit(text=f"m{i}".encode(), registered_delivery=0) for i in range(8)]
            answers = [await esme.recv() for _ in range(8)]
            elapsed = time.monotonic() - started
            assert sorted(a.sequence for a in answers) == sequences
            assert 0.2 <= elapsed < 1.0  # one latency, not eight
            assert smsc.max_outstanding() == 8
            assert smsc.duplicates() == 0
            await esme.submit(text=b"m3", registered_delivery=0)  # a resend of the same PDU
            await esme.recv()
            assert smsc.duplicates() == 1

    run(main)


# --- as a process -------------------------------------------------------------------------------


@pytest.mark.slow
def test_command_line(tmp_path: Path) -> None:
    stats_file = tmp_path / "stats.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rcsgate.connectors.smpp.fake_smsc",
            "--port",
            "0",
            "--stats-file",
            str(stats_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
        assert match, line
        port = int(match.group(1))

        async def main() -> None:
            esme = await Esme.connect(port)
            await esme.bind()
            await esme.submit()
            await esme.recv()
            await esme.ack(await esme.recv())
            deadline = time.monotonic() + 5
            while True:
                with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                    if json.loads(stats_file.read_text())["receipts_acked"] == 1:
                        break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await esme.close()

        run(main)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
        stats = json.loads(stats_file.read_text())
        assert {k: stats[k] for k in ("submits", "receipts_sent", "receipts_acked", "pending_receipts")} == {
            "submits": 1,
            "receipts_sent": 1,
            "receipts_acked": 1,
            "pending_receipts": 0,
        }
        assert set(stats) >= {"duplicates", "max_outstanding", "mo_sent"}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
