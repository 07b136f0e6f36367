"""Typed errors raised by the core; each provider renders them into its own status and body.

Tree::

    ServerError
    ├── ConfigError                  bad settings or missing files at start-up (never reaches a client)
    └── RequestError                 the client's fault, 4xx
    │   ├── AuthenticationError      401 missing / wrong key
    │   ├── InvalidRequestError      400 bad body, bad parameter (``param`` names it)
    │   │   └── ContextLengthError   400 prompt + max_tokens beyond the model's context
    │   ├── ModelNotFoundError       404 unknown model
    │   ├── NotFoundError            404 unknown path or object
    │   ├── PayloadTooLargeError     413 body over the configured limit
    │   ├── UnsupportedMediaTypeError 415 a JSON route's body not sent as application/json
    │   ├── ClientDisconnectedError  499 the client left before a non-streaming answer was ready
    │   └── RateLimitError           429 admission control (``retry_after`` seconds)
    └── EngineError                  5xx
        ├── EngineUnavailableError   503 engine dead, loading or shutting down
        │   └── OverloadedError      503 too busy for now, retry later (some wire APIs have their own status)
        ├── BadGatewayError          502 an upstream answered badly (a gateway's failure)
        ├── RequestTimeoutError      504 the request outlived ``limits.request_timeout_s``
        ├── StoreUnavailableError    503 the document store failed or outlived ``store.op_timeout_s``
        └── InternalError            500 anything unexpected

Classify by type, never by matching message text.
"""

from __future__ import annotations


class ServerError(Exception):
    """Base of every error the server raises on purpose."""

    status: int = 500
    kind: str = "server_error"
    # Seconds after which a retry may succeed (the ``Retry-After`` header routes send), when the error says so.
    retry_after: int | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class ConfigError(ServerError):
    """Invalid configuration or a missing file at start-up."""


class RequestError(ServerError):
    """The request cannot be served as sent."""

    status = 400
    kind = "invalid_request_error"


class AuthenticationError(RequestError):
    status = 401
    kind = "authentication_error"


class InvalidRequestError(RequestError):
    status = 400
    kind = "invalid_request_error"


class ContextLengthError(InvalidRequestError):
    """Prompt tokens (plus requested output) exceed the model's context window."""

    def __init__(self, message: str, *, prompt_tokens: int, max_context: int, param: str = "messages") -> None:
        super().__init__(message, param=param, code="context_length_exceeded")
        self.prompt_tokens = prompt_tokens
        self.max_context = max_context


class ModelNotFoundError(RequestError):
    status = 404
    kind = "not_found_error"

    def __init__(self, model: str) -> None:
        super().__init__(f"The model `{model}` does not exist.", param="model", code="model_not_found")
        self.model = model


class NotFoundError(RequestError):
    status = 404
    kind = "not_found_error"


class MethodNotAllowedError(RequestError):
    status = 405
    kind = "invalid_request_error"


class PayloadTooLargeError(RequestError):
    status = 413
    kind = "invalid_request_error"


class UnsupportedMediaTypeError(RequestError):
    """A JSON route's body sent without ``Content-Type: application/json`` (or a ``+json`` type)."""

    status = 415
    kind = "invalid_request_error"


class ClientDisconnectedError(RequestError):
    """The client went away before the answer was ready (nginx's 499; nobody reads the body)."""

    status = 499
    kind = "client_closed_request"


class RateLimitError(RequestError):
    status = 429
    kind = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, code="rate_limit_exceeded")
        self.retry_after = retry_after


class EngineError(ServerError):
    status = 500
    kind = "server_error"


class EngineUnavailableError(EngineError):
    status = 503
    kind = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OverloadedError(EngineUnavailableError):
    """Too busy to take the request now; a retry later may succeed (wire APIs with an "overloaded" error send it)."""


class BadGatewayError(EngineError):
    """What a gateway answers when the service behind it failed or sent no valid answer."""

    status = 502


class RequestTimeoutError(EngineError):
    """The request ran past its deadline and was aborted (its answer, if any, is cut short)."""

    status = 504
    kind = "timeout"


class StoreUnavailableError(EngineError):
    """The document store failed or did not answer in time; a retry may succeed."""

    status = 503
    kind = "service_unavailable"
    retry_after = 1


class InternalError(EngineError):
    status = 500
    kind = "server_error"
