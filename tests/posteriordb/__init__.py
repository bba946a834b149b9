"""posteriordb translations: against reference posteriors, and ports without references."""
