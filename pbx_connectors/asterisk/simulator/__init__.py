"""A protocol-faithful Asterisk 22 PBX simulator for the connector's tests and benchmarks.

It serves the real AMI wire protocol (login, events with ``Timestamp``, Ping, Hangup,
AbsoluteTimeout, CoreShowChannels) and plays calls made of Local channels exactly as the
recorded transcripts in ``shared/field-notes/asterisk-transcripts`` show them, calling the
configured FastAGI server as Asterisk does before dialling. Faults: ``drop_ami``,
``silent_ami``, ``duplicate_events`` and per-call ``CallSpec`` options.
"""

from .ami_server import AmiServer
from .calls import parse_limit
from .cdr import CdrRecord, tvdiff_ms
from .channels import CAUSE_TEXT, cause_text
from .pbx import CallHandle, Simulator, SimulatorConfig
from .scenario import CallRecord, CallSpec, EndedBy, HangupBy, Outcome, ScenarioError

__all__ = [
    "CAUSE_TEXT",
    "AmiServer",
    "CallHandle",
    "CallRecord",
    "CallSpec",
    "CdrRecord",
    "EndedBy",
    "HangupBy",
    "Outcome",
    "ScenarioError",
    "Simulator",
    "SimulatorConfig",
    "cause_text",
    "parse_limit",
    "tvdiff_ms",
]
