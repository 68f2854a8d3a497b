"""Account and money use cases of the engine core, for every front end (admin API, billing,
payments, CLI): ``changes`` (create, update, status, close, auto top-up), ``money`` (top-up,
withdrawal, adjustment, exactly once per key), ``record`` (the Postgres account record) and
``errors`` (why a use case refused). They never import an HTTP layer.
"""
