"""The FPL surface language: grammar, parser, AST, spans and diagnostics."""
