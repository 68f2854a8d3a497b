"""Rate plans and rates: JSON CRUD, CSV deck import/export, pricing a hypothetical call."""
