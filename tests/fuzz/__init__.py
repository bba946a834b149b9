"""Grammar-aware fuzzing of ``fpl check`` (issue 11): see ``mutate.py`` and ``run.py``."""
