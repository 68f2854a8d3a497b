"""Postpaid billing: bill plans, bill cycles, invoices, documents and the handoff to accounting.

Above the engine: it imports ``charging_engine`` (money use cases, the stream consumer, the
rater) and is never imported by it. Pure cores (``cycles``, ``proration``, ``taxes``,
``discounts``, ``totals``) do no I/O; thin adapters talk to Postgres, HTTP and the PDF renderer.
"""
