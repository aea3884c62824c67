"""What the operators' dead-letter tools share: reading an SQS dead-letter queue and their
`list` / `show` / `replay` / `delete` commands (scripts/dead_letters.py for the intake's
submissions, dead and parked, changefeed/webhook_dead_letters.py for webhook deliveries, whose
queue the erasure reads through it too, to delete the letters carrying an erased contact).

Listing receives every message, hiding it for `HIDE_SECONDS` so each is seen once, and
`release` makes those not replayed visible again; a tool deletes a letter only after its
replay was accepted (so a crash in between duplicates a message rather than losing one), or
on the operator's `delete`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, Protocol, TextIO, TypeVar

from cliniko_automations.common.printable import printable

# Long enough to list and replay a few thousand messages; released again when done.
HIDE_SECONDS = 120
# A listing receives for at most this long (half of HIDE_SECONDS): past HIDE_SECONDS the first
# messages it hid are in view again while it still receives, to come back with new receipt
# handles (SQS deletes a message by its newest handle alone, the others' deletes succeed and
# leave it), and a queue too big to list within HIDE_SECONDS (some 10,000 letters at 100 ms a
# receive) was received over and over without end. What is left is listed by the next run.
LISTING_SECONDS = HIDE_SECONDS / 2
# How many times a release asks SQS to show a message again that SQS failed to.
RELEASE_ATTEMPTS = 3
# How a listing shows an id a letter does not have (a message holding no submission, a
# webhook letter that is no delivery): no letter's id.
NO_ID = "-"


class Letter(Protocol):
    @property
    def message_id(self) -> str: ...

    @property
    def receipt_handle(self) -> str: ...

    def public(self) -> dict[str, Any]: ...


L = TypeVar("L", bound=Letter)


class DeadLetterQueue:
    """One SQS dead-letter queue, as the tools read it. Every receipt handle it receives is
    held from the moment it arrives until the message is deleted or released: an error or a
    Ctrl-C part-way through a listing must not leave what was already received hidden (a
    `list` would then say 0, and `replay --all` "nothing to replay", for HIDE_SECONDS)."""

    def __init__(self, sqs: Any, url: str) -> None:
        self._sqs = sqs
        self.url = url
        self._held: dict[str, None] = {}  # receipt handles, in the order received
        # False when the last listing stopped at LISTING_SECONDS with messages left unseen.
        self.complete = True

    def receive_all(self, limit: int | None = None) -> list[Mapping[str, Any]]:
        """Every message in the queue (or the first `limit` or so, or those received within
        LISTING_SECONDS: `complete` says whether that cut it short), each once, hidden for
        HIDE_SECONDS (and held for release)."""
        received: dict[str, Mapping[str, Any]] = {}  # by message id: each once, newest handle
        for messages in self._receives(limit):
            received.update((m["MessageId"], m) for m in messages)
        return list(received.values())

    def receive_each(
        self, limit: int | None = None, time_left: Callable[[], float | None] | None = None
    ) -> Iterator[Mapping[str, Any]]:
        """The messages `receive_all` lists, each as it arrives, for a reader that keeps
        none: a letter may be 256 KB, and a thousand held at once is more than a 256 MB
        Lambda has. A message received again comes again, with its newest receipt handle.
        `time_left` (seconds, None for no bound): no receive is made once it is spent."""
        for messages in self._receives(limit, time_left):
            yield from messages

    def _receives(
        self, limit: int | None, time_left: Callable[[], float | None] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        seen: set[str] = set()
        empty_reads = 0
        started = time.monotonic()
        self.complete = True
        # SQS samples its servers on short polls: one empty answer is not proof of none left.
        while empty_reads < 3 and (limit is None or len(seen) < limit):
            left = time_left() if time_left is not None else None
            if time.monotonic() - started >= LISTING_SECONDS or (left is not None and left <= 0):
                self.complete = False
                break
            answer = self._sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=HIDE_SECONDS,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = answer.get("Messages", [])
            self._held.update(dict.fromkeys(m["ReceiptHandle"] for m in messages))
            empty_reads = 0 if messages else empty_reads + 1
            seen.update(m["MessageId"] for m in messages)
            yield messages

    def held_elsewhere(self) -> int:
        """About how many messages of the queue are hidden but not by this reader: received by
        another (a colleague's run, one killed within HIDE_SECONDS, an erasure's purge)."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        ).get("Attributes", {})
        hidden = whole_number(attributes.get("ApproximateNumberOfMessagesNotVisible")) or 0
        return max(0, hidden - len(self._held))

    def delete(self, receipt_handle: str) -> None:
        self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=receipt_handle)
        self._held.pop(receipt_handle, None)

    def release(self) -> None:
        """Make every message received and not deleted visible again."""
        handles = list(self._held)
        for start in range(0, len(handles), 10):
            chunk = handles[start : start + 10]
            self._show_again(chunk)
            for handle in chunk:
                del self._held[handle]

    def _show_again(self, handles: list[str]) -> None:
        # The batch answers 200 with the entries it failed: those SQS failed on its side
        # (SenderFault false) stay hidden until HIDE_SECONDS, and a `replay --all` right after
        # a listing said "nothing to replay", so they are asked again. One SQS refuses (a
        # handle whose message is back in view, or deleted) is not hidden either way.
        for attempt in range(RELEASE_ATTEMPTS):
            answer = self._sqs.change_message_visibility_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for n, handle in enumerate(handles)
                ],
            )
            handles = [
                handles[int(failure["Id"])]
                for failure in answer.get("Failed", [])
                if not failure.get("SenderFault")
            ]
            if not handles:
                return
            time.sleep(0.1 * 2**attempt)


class DeadLetterTool(Generic[L]):
    """A tool's letters: listed (and hidden) once, found by id, deleted once replayed, the
    rest released. A tool says how a message reads (`_describe`), their order (`_order`),
    the ids an operator may name one by (`_ids`), and how a replay goes (`replay`)."""

    # What one message is called in what the tool prints.
    noun = "dead letter"

    def __init__(self, sqs: Any, dead_letter_queue_url: str) -> None:
        self._dlq = DeadLetterQueue(sqs, dead_letter_queue_url)
        self._received: list[L] = []

    def _describe(self, message: Mapping[str, Any]) -> L:
        raise NotImplementedError

    def _order(self, letter: L) -> Any:
        raise NotImplementedError

    def _ids(self, letter: L) -> tuple[str, ...]:
        raise NotImplementedError

    def replay(
        self, letters: Sequence[L], report: Callable[[str], None] = lambda _: None
    ) -> tuple[list[str], list[str]]:
        """(the replayed message ids, a line per letter refused); `report` is told a line as
        each letter leaves the queue, so a replay cut short has said what it moved."""
        raise NotImplementedError

    def list_letters(self) -> list[L]:
        """Every dead letter, in the tool's order. Call `release()` when done with them."""
        self._received = sorted(
            (self._describe(m) for m in self._dlq.receive_all()), key=self._order
        )
        return list(self._received)

    @property
    def complete(self) -> bool:
        """False when the last listing stopped at LISTING_SECONDS with letters left unseen."""
        return self._dlq.complete

    def held_elsewhere(self) -> int:
        """About how many letters another reader holds hidden (`DeadLetterQueue.held_elsewhere`)."""
        return self._dlq.held_elsewhere()

    def find(self, identifier: str) -> list[L]:
        if identifier == NO_ID:
            # Copied from a listing, it named every letter lacking that id at once (a whole
            # submission from an older release among them), and `delete -` deleted them all.
            return []
        letters = self._received or self.list_letters()
        return [d for d in letters if identifier in self._ids(d)]

    def release(self) -> None:
        """Make every received (and not replayed) dead letter visible again, those whose
        listing failed part-way included."""
        self._dlq.release()
        self._received = []

    def delete(self, letters: Sequence[L], report: Callable[[str], None]) -> None:
        """Remove the letters unreplayed (the operator settled them by other means)."""
        for letter in letters:
            self._removed(letter, report, f"deleted {letter.message_id}")

    def _replayed(self, letter: L, report: Callable[[str], None]) -> None:
        """The letter's replay was accepted: it leaves the queue, and `report` says so."""
        self._removed(letter, report, f"replayed {letter.message_id}")

    def _removed(self, letter: L, report: Callable[[str], None], line: str) -> None:
        """The letter leaves the queue, and `report` is told `line`."""
        self._dlq.delete(letter.receipt_handle)
        self._received.remove(letter)
        report(line)


def whole_number(value: Any) -> int | None:
    """An attribute read as a whole number, or None: anyone who can send to a queue can set
    a letter's attributes, and one malformed letter must not stop a listing."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def string_attributes(message: Mapping[str, Any]) -> dict[str, str]:
    """A message's message attributes, by name, as strings."""
    return {
        name: value.get("StringValue", "")
        for name, value in message.get("MessageAttributes", {}).items()
    }


def add_commands(
    parser: argparse.ArgumentParser,
    *,
    id_help: str,
    replay_help: str,
    noun: str = "dead letter",
) -> None:
    """The subcommands, their help naming what the queue holds (`noun`)."""
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help=f"list the {noun}s")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    show = commands.add_parser("show", help=f"show one {noun} (no personal values)")
    show.add_argument("id", help=id_help)
    replay = commands.add_parser("replay", help=replay_help)
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help=id_help)
    which.add_argument("--all", action="store_true", help=f"every {noun}")
    delete = commands.add_parser("delete", help=f"remove a {noun} without replaying it")
    delete.add_argument("id", help=id_help)


def run_command(
    args: argparse.Namespace,
    letters: DeadLetterTool[L],
    out: TextIO,
    *,
    table: Callable[[Sequence[L], TextIO], None],
    show: Callable[[L, TextIO], None],
) -> int:
    """Carry out the parsed `list`, `show`, `replay` or `delete`; release what was received,
    whatever ends it (an error, a closed pipe, Ctrl-C: `finally` runs on KeyboardInterrupt
    too)."""

    def report(line: str) -> None:
        print(line, file=out, flush=True)

    try:
        if args.command == "list":
            found = letters.list_letters()
            _tell_if_cut(letters)
            _tell_if_held(letters)
            if args.json:
                for letter in found:
                    print(json.dumps(letter.public()), file=out)
            else:
                table(found, out)
            return 0
        every = getattr(args, "all", False)  # only `replay` takes --all
        chosen = letters.list_letters() if every else letters.find(args.id)
        _tell_if_cut(letters)
        held = 0 if chosen else _tell_if_held(letters)
        if not chosen:
            print(
                # The id as typed, escaped: one pasted from a ticket may hide a control.
                "nothing to replay" if every else f"no {letters.noun} with id {printable(args.id)}",
                file=sys.stderr,
            )
            return 0 if every and not held else 1
        if args.command == "show":
            for n, letter in enumerate(chosen):
                if n:
                    print(file=out)
                show(letter, out)
            return 0
        if args.command == "delete" and len(chosen) > 1:
            # A webhook-id names a change's letter to every subscriber, a submission id its
            # every copy: pasted to drop one subscriber's letter, it deleted the others' too.
            ids = ", ".join(letter.message_id for letter in chosen)
            print(
                f"{printable(args.id)} names {len(chosen)} {letters.noun}s ({ids}): delete each "
                "by its message id",
                file=sys.stderr,
            )
            return 1
        if args.command == "delete":
            letters.delete(chosen, report)
            return 0
        _, refused = letters.replay(chosen, report)
        for line in refused:
            print(f"not replayed {line}", file=sys.stderr)
        return 1 if refused else 0
    finally:
        letters.release()


def _tell_if_held(letters: DeadLetterTool[L]) -> int:
    """Say so when letters are hidden by another reader (a listing then misses them, and a
    replay finds "nothing"); how many."""
    held = letters.held_elsewhere()
    if held:
        print(
            f"about {held} more {letters.noun}(s) are hidden by another reader (a colleague's "
            f"run, one stopped within the last {HIDE_SECONDS // 60} minutes, an erasure's "
            f"purge): run again within {HIDE_SECONDS // 60} minutes to see them",
            file=sys.stderr,
        )
    return held


def _tell_if_cut(letters: DeadLetterTool[L]) -> None:
    if not letters.complete:
        print(
            f"the listing stopped after {LISTING_SECONDS:.0f} s: the queue holds more "
            f"{letters.noun}s than were listed; a run lists from the front of the queue, so "
            "settle those listed (replay or delete them) and run again for the rest",
            file=sys.stderr,
        )


def print_table(letters: Sequence[Letter], columns: Sequence[str], out: TextIO) -> None:
    """The letters' `columns`, aligned, a line each."""
    rows = [tuple(columns)] + [tuple(_text(getattr(d, c)) for c in columns) for d in letters]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)), file=out
        )


def print_letter(letter: Letter, out: TextIO, *, omitted_when_empty: str) -> None:
    """The letter's public fields, a line each, the names aligned; a list (`fields`, field
    names) on one line, and the field `omitted_when_empty` only when it has a value."""
    shown = {
        name: value
        for name, value in letter.public().items()
        if value or name != omitted_when_empty
    }
    width = max(map(len, shown)) + 2
    for name, value in shown.items():
        print(f"{name + ':':<{width}}{_text(value)}", file=out)


def _text(value: Any) -> str:
    """A field as printed: a list (of field names, of contact ids) comma-separated, "-" when
    empty."""
    if isinstance(value, list):
        return printable(", ".join(map(str, value)) or "-")
    return printable(value)
