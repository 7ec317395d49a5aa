"""trioweb: a Trio-native web framework where the client going away cancels the request."""

from ._app import App as App
from ._binding import Cookie as Cookie
from ._binding import Depends as Depends
from ._binding import Form as Form
from ._binding import Header as Header
from ._binding import Query as Query
from ._data_rate import MinDataRate as MinDataRate
from ._datastructures import Headers as Headers
from ._datastructures import QueryParams as QueryParams
from ._errors import BlockingCallbackError as BlockingCallbackError
from ._errors import HTTPError as HTTPError
from ._errors import IOCancelledError as IOCancelledError
from ._errors import RequestValidationError as RequestValidationError
from ._errors import RouteDefinitionError as RouteDefinitionError
from ._errors import TokenDisposedError as TokenDisposedError
from ._errors import WebSocketAbortedError as WebSocketAbortedError
from ._errors import WebSocketClosed as WebSocketClosed
from ._errors import WebSocketDisposedError as WebSocketDisposedError
from ._errors import WebSocketError as WebSocketError
from ._errors import WebSocketStateError as WebSocketStateError
from ._files import FileResponse as FileResponse
from ._outcome import DisconnectReason as DisconnectReason
from ._request import Request as Request
from ._response import EventStream as EventStream
from ._response import JSONResponse as JSONResponse
from ._response import Response as Response
from ._response import StreamingResponse as StreamingResponse
from ._response import redirect as redirect
from ._router import Router as Router
from ._serve import Server as Server
from ._serve import serve as serve
from ._shield import shielded as shielded
from ._sse import ServerSentEvent as ServerSentEvent
from ._state import State as State
from ._token import CallbackRegistration as CallbackRegistration
from ._token import DisconnectToken as DisconnectToken
from ._token import DisconnectTokenStatistics as DisconnectTokenStatistics
from ._version import __version__ as __version__
from ._websocket import WebSocket as WebSocket
from ._websocket import WebSocketState as WebSocketState
from ._websocket import WebSocketStatistics as WebSocketStatistics

__all__ = [
    "App",
    "BlockingCallbackError",
    "CallbackRegistration",
    "Cookie",
    "Depends",
    "DisconnectReason",
    "DisconnectToken",
    "DisconnectTokenStatistics",
    "EventStream",
    "FileResponse",
    "Form",
    "HTTPError",
    "Header",
    "Headers",
    "IOCancelledError",
    "JSONResponse",
    "MinDataRate",
    "Query",
    "QueryParams",
    "Request",
    "RequestValidationError",
    "Response",
    "RouteDefinitionError",
    "Router",
    "Server",
    "ServerSentEvent",
    "State",
    "StreamingResponse",
    "TokenDisposedError",
    "WebSocket",
    "WebSocketAbortedError",
    "WebSocketClosed",
    "WebSocketDisposedError",
    "WebSocketError",
    "WebSocketState",
    "WebSocketStateError",
    "WebSocketStatistics",
    "__version__",
    "redirect",
    "serve",
    "shielded",
]
