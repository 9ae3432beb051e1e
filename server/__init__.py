"""OpenAI-compatible server: `constrained serve` (cli), the FastAPI app (app), the batching
engine (engine), request validation (protocol). Imports are left to the submodules so that
`constrained --help` stays fast."""
