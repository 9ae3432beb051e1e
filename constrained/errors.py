"""Errors a request can cause: each says what is wrong and where (the server maps them to 400)."""


class ToolSpecError(ValueError):
    """A request's tools or tool_choice cannot be served."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param
