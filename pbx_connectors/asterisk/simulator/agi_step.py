"""The dialplan's ``AGI()`` step on the A-leg: the environment sent and res_agi's commands.

``handle_command`` answers one command line the way res_agi does, with the ``AGIExecStart``,
``VarSet`` and ``AGIExecEnd`` events a real server emits: ``SET VARIABLE`` (plus the harmless
``GET VARIABLE``, ``NOOP`` and ``VERBOSE``); anything else is ``510 Invalid or unknown command``.
"""

from __future__ import annotations

import random

from . import events as ev
from .agi_client import parse_args
from .legs import Legs

_SET_USAGE = ("520-Invalid command syntax.  Proper usage follows:\n"
              "Usage: SET VARIABLE <variablename> <value>\n520 End of proper usage.\n")


def environment(legs: Legs, url: str, script: str, version: str) -> list[tuple[str, str]]:
    """The ``agi_*`` lines in res_agi's order; the dialplan passes the Linkedid as arg 1."""
    a, s = legs.a, legs.spec
    return [
        ("agi_network", "yes"), ("agi_network_script", script),
        ("agi_request", url), ("agi_channel", a.name), ("agi_language", a.language),
        ("agi_type", "Local"), ("agi_uniqueid", a.uniqueid),
        ("agi_version", version), ("agi_callerid", s.caller),
        ("agi_calleridname", s.caller), ("agi_callingpres", "0"),
        ("agi_callingani2", "0"), ("agi_callington", "0"), ("agi_callingtns", "0"),
        ("agi_dnid", "unknown"), ("agi_rdnis", "unknown"), ("agi_context", a.context),
        ("agi_extension", s.destination), ("agi_priority", str(a.priority)),
        ("agi_enhanced", "0.0"), ("agi_accountcode", a.accountcode),
        ("agi_threadid", str(139_850_000_000_000 + random.randrange(10**9))),
        ("agi_arg_1", a.linkedid),
    ]


def handle_command(legs: Legs, line: str, assigned: dict[str, str]) -> str:
    """One command line: its events, the variables it sets (into ``assigned``), its reply."""
    a = legs.a
    command_id = random.randrange(10**8, 2**31)
    legs.emit(ev.agi_exec_start(a, command_id, line))
    argv = parse_args(line)
    words = [w.upper() for w in argv[:2]]
    code, result, reply = 510, "Invalid or unknown command", "510 Invalid or unknown command\n"
    if words == ["SET", "VARIABLE"]:
        if len(argv) != 4:
            code, result, reply = 520, "Usage", _SET_USAGE
        else:
            legs.var(a, argv[2], argv[3])
            assigned[argv[2]] = argv[3]
            code, result, reply = 200, "Success", "200 result=1\n"
    elif words == ["GET", "VARIABLE"] and len(argv) == 3:
        value = a.variables.get(argv[2])
        reply = "200 result=0\n" if value is None else f"200 result=1 ({value})\n"
        code, result = 200, "Success"
    elif words[:1] == ["NOOP"]:
        code, result, reply = 200, "Success", "200 result=0\n"
    elif words[:1] == ["VERBOSE"] and 2 <= len(argv) <= 3:
        code, result, reply = 200, "Success", "200 result=1\n"
    legs.emit(ev.agi_exec_end(a, command_id, line, code, result))
    return reply
