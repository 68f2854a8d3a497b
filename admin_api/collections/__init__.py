"""Collections in the admin API: agents and presets, pickups and renewals with their
assignments, visits and collections (an agent's key sees its own tasks only), and the
supervisors' report."""
