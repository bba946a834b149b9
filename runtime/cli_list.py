"""``fpl list distributions|functions|solvers [--json]``: the standard library, one
line per entry (name, signature, summary), read from the registries — no JAX."""

from __future__ import annotations

import json

KINDS = ("distributions", "functions", "solvers")


def add_parsers(sub) -> dict:
    """Add this module's subcommands to ``sub``; returns ``{name: handler}``."""
    c = sub.add_parser("list", help="list the built-in distributions, functions or solvers")
    c.add_argument("kind", choices=KINDS)
    c.add_argument("--json", action="store_true", help="one JSON array of objects")
    return {"list": cmd_list}


def entries(kind: str) -> list[dict]:
    """The registry's entries of ``kind`` as plain records, sorted by name."""
    from fpl.stdlib import docs
    from fpl.stdlib.registry import registry
    from fpl.stdlib.solvers import options

    reg = registry()
    if kind == "distributions":
        return [
            {
                "name": e.name,
                "signature": docs.distribution_signature(e),
                "support": docs.support_text(e),
                "forms": list(e.forms),
                "summary": docs.summary(e.doc),
            }
            for e in sorted(reg.distributions.values(), key=lambda e: e.name)
        ]
    if kind == "functions":
        return [
            {
                "name": e.name,
                "signature": docs.function_signature(e),
                "category": e.category,
                "summary": docs.summary(e.doc),
            }
            for e in sorted(reg.functions.values(), key=lambda e: e.name)
        ]
    return [
        {
            "name": e.name,
            "signature": f"{e.name}({docs.solver_options(e)})",
            "kinds": list(e.kinds),
            "options": {o.name: None if o.required else o.default for o in options(e).values()},
            "unrollable": e.unrollable,
            "summary": docs.summary(e.doc),
        }
        for e in sorted(reg.solvers.values(), key=lambda e: e.name)
    ]


def cmd_list(args) -> int:
    from fpl.runtime.cli import EXIT_OK

    rows = entries(args.kind)
    if args.json:
        print(json.dumps(rows, indent=1))
        return EXIT_OK
    width = max((len(r["signature"]) for r in rows), default=0)
    for r in rows:
        print(f"{r['signature']:<{width}}  {r['summary']}")
    return EXIT_OK
