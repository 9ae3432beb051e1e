"""Plug-ins that carry the grammars and parsers into other serving engines (see README.md here)."""
