"""The real Asterisk transcripts (``tests/fixtures/asterisk-transcripts``) as parsed AMI events:
our own actions (``>>>`` lines) and the banner left out, everything Asterisk sent kept."""

from __future__ import annotations

from pathlib import Path

from pbx_connectors.asterisk.ami_protocol import Message, parse_all
from pbx_connectors.asterisk.commands import Leg

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-transcripts"


def events(name: str) -> list[Message]:
    """The events (not the responses) a transcript's Asterisk sent, in wire order."""
    lines = (TRANSCRIPTS / f"{name}.txt").read_text().splitlines()
    kept = [ln for ln in lines if not ln.startswith((">>>", "Asterisk Call Manager/"))]
    raw = "\r\n".join(kept).encode() + b"\r\n\r\n"
    return [m for m in parse_all(raw) if m.event is not None]


def a_legs(msgs: list[Message], tenant: str = "t1", account: str = "acc1") -> list[Leg]:
    """The billable legs of a transcript: the ``;2`` halves in the outbound context (the ones
    that ran, or would have run, the AGI step), as the FastAGI server would register them."""
    legs: dict[str, Leg] = {}
    for m in msgs:
        if m.event == "Newchannel" and "@outbound" in (m.get("Channel") or "") \
                and (m.get("Channel") or "").endswith(";2"):
            legs[m["Uniqueid"]] = Leg(m["Uniqueid"], tenant, account, m["Channel"],
                                      m.get("Linkedid") or "")
    return list(legs.values())


def cdr_seconds(msgs: list[Message]) -> dict[str, int]:
    """BillableSeconds of each ANSWERED Cdr, by UniqueID."""
    return {m["UniqueID"]: int(m["BillableSeconds"]) for m in msgs
            if m.event == "Cdr" and m.get("Disposition") == "ANSWERED"}
