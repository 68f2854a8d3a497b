"""What every HTTP front end shares: problem+json errors (``problems``), the request-body guard
(``body_guard``) and API-key extraction (``api_key``)."""
