"""The connector's TOML file, the account mapping and the event field readers."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx_connectors.asterisk.accounts import AccountMapper
from pbx_connectors.asterisk.ami_protocol import Message
from pbx_connectors.asterisk.config import AccountsConfig, ConfigError, load_config, parse_config
from pbx_connectors.asterisk.events import identity, seconds, timestamp_ms, timestamp_us, tvdiff_ms

GOOD = """
[[pbx]]
name = "east"
tenant = "acme"
[pbx.ami]
host = "10.0.0.5"
username = "charging"
secret = "s3cret"
[pbx.fastagi]
port = 4573
allow = ["10.0.0.0/8"]
answer_timeout_s = 0.5
[pbx.accounts]
pattern = '^acme-(?P<account>[a-z0-9]+)$'

[[pbx]]
name = "west"
tenant = "globex"
[pbx.ami]
username = "charging"
secret_env = "WEST_SECRET"
[pbx.fastagi]
port = 4574
[pbx.charging]
cdr_tolerance_s = 2
"""


def test_a_good_file() -> None:
    cfg = parse_config(GOOD)
    east, west = cfg.pbx
    assert (east.name, east.tenant, east.ami.port, east.fastagi.answer_timeout_s) == \
        ("east", "acme", 5038, 0.5)
    assert east.ami.resolved_secret() == "s3cret"
    assert west.charging.cdr_tolerance_s == 2
    assert west.fastagi.answer_timeout_s == 1.0  # the default answer bound


def test_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    west = parse_config(GOOD).pbx[1]
    monkeypatch.delenv("WEST_SECRET", raising=False)
    with pytest.raises(ConfigError, match="WEST_SECRET"):
        west.ami.resolved_secret()
    monkeypatch.setenv("WEST_SECRET", "from-env")
    assert west.ami.resolved_secret() == "from-env"


@pytest.mark.parametrize(("text", "message"), [
    ("pbx = [", "not valid TOML"),
    ("", "pbx: Field required"),
    (GOOD.replace('port = 4574', 'port = 4573'), "share a FastAGI host and port"),
    (GOOD.replace('name = "west"', 'name = "east"'), "its own name"),
    (GOOD.replace('host = "10.0.0.5"', 'hots = "10.0.0.5"'),
     r"pbx\[0\] \(east\)\.ami\.hots: Extra inputs are not permitted"),
    (GOOD.replace('secret = "s3cret"', ''), "exactly one of secret or secret_env"),
    (GOOD.replace('"10.0.0.0/8"', '"ten"'), "not an IP network"),
    (GOOD.replace("(?P<account>[a-z0-9]+)", "([a-z0-9]+)"), "none named 'account'"),
    (GOOD.replace("(?P<account>[a-z0-9]+)", "([a-z"), "not a regular expression"),
    (GOOD.replace('tenant = "acme"', 'tenant = "a b"'), "tenant 'a b' must be"),
    (GOOD.replace("answer_timeout_s = 0.5", "answer_timeout_s = 0"), "greater than 0"),
    (GOOD.replace("cdr_tolerance_s = 2", "cdr_tolerance_s = -1"), "greater than or equal"),
    (GOOD.replace('username = "charging"\nsecret = "s3cret"',
                  'username = "charging"\nsecret = "s3cret"\nevents = "call, cdr"'),
     r"ami\.events: .*unknown AMI event class ' cdr'"),
    (GOOD.replace('username = "charging"\nsecret = "s3cret"',
                  'username = "charging"\nsecret = "s3cret"\nevents = "off"'),
     "unknown AMI event class 'off'"),
    (GOOD.replace('username = "charging"\nsecret = "s3cret"',
                  'username = "charging"\nsecret = "s3cret"\nevents = "call"'),
     "events must include cdr"),
])
def test_bad_files_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text, "pbx.toml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read Asterisk config"):
        load_config(tmp_path / "nope.toml")
    (tmp_path / "ok.toml").write_text(GOOD)
    assert len(load_config(tmp_path / "ok.toml").pbx) == 2


def test_account_mapping() -> None:
    as_is = AccountMapper(AccountsConfig())
    assert as_is.account("acc-1", "100") == "acc-1"
    assert as_is.account("", "100") is None
    assert as_is.account("has space", None) is None  # cannot be an engine account id
    rx = AccountMapper(AccountsConfig(pattern=r"^acme-(?P<account>\w+)$"))
    assert rx.account("acme-42", None) == "42"
    assert rx.account("globex-42", None) is None
    by_caller = AccountMapper(AccountsConfig(source="callerid"))
    assert by_caller.from_agi({"agi_accountcode": "x", "agi_callerid": "15550001"}) == "15550001"
    assert by_caller.account("x", "<unknown>") is None


def test_event_fields() -> None:
    m = Message.of(Event="Hangup", Timestamp="1795374840.519879", BillableSeconds="12")
    assert timestamp_us(m) == 1795374840519879
    assert timestamp_ms(m) == 1795374840519
    assert seconds(m, "BillableSeconds") == 12
    for bad in ("", "12.x", "-1.5", "1e9"):
        assert timestamp_us(Message.of(Timestamp=bad)) is None
    assert seconds(Message.of(BillableSeconds="-3"), "BillableSeconds") is None
    # Asterisk truncates the microsecond difference toward zero, not each side
    assert tvdiff_ms(13_000_999, 10_001_000) == 3000 - 0
    assert tvdiff_ms(13_001_499, 10_000_500) == 3000
    assert tvdiff_ms(12_999_600, 10_000_500) == 2999
    dup = Message.of(Event="Cdr", Timestamp="1.0", UniqueID="a")
    assert identity(dup) == identity(Message.of(Event="Cdr", Timestamp="2.0", UniqueID="a"))


def test_the_shipped_example_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "asterisk" / "connector.toml"
    monkeypatch.setenv("PBX_EAST_AMI_SECRET", "s")
    (pbx,) = load_config(example).pbx
    assert (pbx.tenant, pbx.fastagi.port, pbx.charging.cdr_tolerance_s) == ("acme", 4573, 0)
