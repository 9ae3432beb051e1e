"""Tools around the library: schema coverage on a corpus, the tool linter, and their CLI."""
