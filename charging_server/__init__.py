"""The assembly point: the one package that wires the processes (``charging-engine serve``,
``settle``, the CLI tasks, the demo) from the engine, the real-time API, the admin API and the
PBX connectors. It imports all of them; none of them imports it."""
