"""The admin API (issue 4): ``admin_api.app.create_admin_app(engine)`` builds it.

Modules by concept: ``auth``/``keys`` (who calls, for which tenant), ``tenants``,
``accounts/``, ``money/``, ``rates/``, ``calls``, ``alerts/``, ``audit``, ``ops/``; shared
``schemas``, ``problems``, ``pagination``; ``background`` is what runs beside the engine.
"""
