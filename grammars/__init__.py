"""The dialects: one module per model family's tool-call format, each declaring a `Dialect`.

Nothing to list here: `constrained.dialect` imports every module of this package and registers the
`Dialect` objects each defines (see README.md in this folder).
"""
