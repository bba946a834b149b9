"""``python -m fpl``: the command line."""

from fpl.runtime.cli import main

raise SystemExit(main())
