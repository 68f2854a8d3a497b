"""The email bytes we assemble ourselves, parsed back by the stdlib's parser: every header,
part and attachment comes out as it went in, whatever the text; nothing injects a header."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage
from email.utils import formataddr

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications.channels.mime import address, message_bytes

TEXT = st.text(st.characters(blacklist_categories=("Cs", "Co"), blacklist_characters="\r\x00"),
               max_size=400)  # fmt: skip
NAMES = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40).map(str.strip)
FILES = st.lists(st.tuples(NAMES.filter(lambda n: n.strip() != ""),
                           st.sampled_from(["application/pdf", "text/csv"]),
                           st.binary(max_size=300)), max_size=2)  # fmt: skip


def parse(data: bytes) -> EmailMessage:
    m = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(m, EmailMessage)
    return m


def lines(s: str) -> str:
    return s.replace("\r\n", "\n")


@given(subject=TEXT, text=TEXT, html=TEXT, name=NAMES, files=FILES)
def test_what_goes_in_comes_out(subject: str, text: str, html: str, name: str,
                                files: list[tuple[str, str, bytes]]) -> None:  # fmt: skip
    data = message_bytes(sender=formataddr((name, "billing@acme.example"), charset="utf-8"),
                         recipient="erin@example.com",
                         subject=subject, message_id="<n1.acme@x.invalid>",
                         date="Fri, 04 Dec 2026 17:54:05 -0000", text=text, html=html,
                         attachments=files)  # fmt: skip
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))  # RFC 5322 2.1.1
    m = parse(data)
    assert not m.defects
    assert m["Subject"] == " ".join(subject.split())
    assert m["From"].addresses[0].addr_spec == "billing@acme.example"
    assert m["From"].addresses[0].display_name == name
    assert m["To"].addresses[0].addr_spec == "erin@example.com"
    assert m["Message-ID"] == "<n1.acme@x.invalid>"
    plain = m.get_body(("plain",))
    assert plain is not None and lines(plain.get_content()) == lines(text)
    if html:
        body = m.get_body(("html",))
        assert body is not None and lines(body.get_content()) == lines(html)
    got = [(a.get_filename(), a.get_content_type(), a.get_payload(decode=True))
           for a in m.iter_attachments() if a.get_content_type() != "text/html"]
    assert got == [(n.replace("\n", " "), mime, d) for n, mime, d in files]


@pytest.mark.parametrize("bad", ["erin@example.com\r\nBcc: eve@evil.example", "not an address",
                                 "", "José <jos\u00e9@example.com>"])  # fmt: skip
def test_what_is_no_single_address_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        address(bad)
    with pytest.raises(ValueError):
        message_bytes(sender="b@acme.example", recipient=bad, subject="s", message_id="<i@x>",
                      date="d", text="t")  # fmt: skip


def test_a_subject_cannot_add_a_header() -> None:
    m = parse(message_bytes(sender="b@acme.example", recipient="e@example.com",
                            subject="Hi\r\nBcc: eve@evil.example", message_id="<i@x>",
                            date="Fri, 04 Dec 2026 17:54:05 -0000", text="t"))  # fmt: skip
    assert m["Bcc"] is None and m["Subject"] == "Hi Bcc: eve@evil.example"
