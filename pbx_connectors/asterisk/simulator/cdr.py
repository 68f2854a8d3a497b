"""The A-leg's CDR as cdr_manager sends it (``unanswered = yes``, a LinkedID mapping).

Times are integer microseconds since the epoch, like Asterisk's ``timeval``s, so Duration and
BillableSeconds follow ``ast_tvdiff_ms`` exactly: floor(floor((end - answer) in ms) / 1000).
"""

from __future__ import annotations

from dataclasses import dataclass

from .events import local_time

US = 1_000_000


def tvdiff_ms(end_us: int, start_us: int) -> int:
    """``ast_tvdiff_ms``: whole milliseconds, floored (its usec part is offset by 1,000,000 so
    the C division never sees a negative numerator)."""
    return (end_us - start_us) // 1000


def whole_seconds(end_us: int, start_us: int) -> int:
    """CDR duration rule: milliseconds, then integer division by 1000 (never negative)."""
    return max(0, tvdiff_ms(end_us, start_us) // 1000)


@dataclass(frozen=True, slots=True)
class CdrRecord:
    """One ``Cdr`` event's content; ``fields`` gives the wire order of cdr_manager."""

    accountcode: str
    source: str
    destination: str
    destination_context: str
    callerid: str
    channel: str
    destination_channel: str
    last_application: str
    last_data: str
    start_us: int
    answer_us: int | None
    end_us: int
    disposition: str
    uniqueid: str
    linkedid: str
    userfield: str = ""

    @property
    def duration(self) -> int:
        return whole_seconds(self.end_us, self.start_us)

    @property
    def billable_seconds(self) -> int:
        return 0 if self.answer_us is None else whole_seconds(self.end_us, self.answer_us)

    def fields(self) -> list[tuple[str, str]]:
        answer = "" if self.answer_us is None else local_time(self.answer_us / US)
        return [
            ("AccountCode", self.accountcode),
            ("Source", self.source),
            ("Destination", self.destination),
            ("DestinationContext", self.destination_context),
            ("CallerID", self.callerid),
            ("Channel", self.channel),
            ("DestinationChannel", self.destination_channel),
            ("LastApplication", self.last_application),
            ("LastData", self.last_data),
            ("StartTime", local_time(self.start_us / US)),
            ("AnswerTime", answer),
            ("EndTime", local_time(self.end_us / US)),
            ("Duration", str(self.duration)),
            ("BillableSeconds", str(self.billable_seconds)),
            ("Disposition", self.disposition),
            ("AMAFlags", "DOCUMENTATION"),
            ("UniqueID", self.uniqueid),
            ("UserField", self.userfield),
            # cdr_manager.conf [mappings] linkedid => LinkedID: appended after the standard set
            ("LinkedID", self.linkedid),
        ]
