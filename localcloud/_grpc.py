"""The thin gRPC shell every emulator uses: method tables built by hand from the message classes that
ship inside the ``google-cloud-*`` wheels (no .proto files, no code generation), served by ``grpc.aio``.

Handlers are ``async def Name(request, context) -> response`` and may raise any
``google.api_core.exceptions.GoogleAPICallError`` (``NotFound``, ``AlreadyExists``, ``InvalidArgument``,
…): the shell turns it into the gRPC status the real service would send, so clients raise the very same
exception. Any other exception becomes ``INTERNAL`` and is logged; it never takes the server down.

Emulators on one event loop (``python -m localcloud serve``) may call each other without the network:
``channel(address)`` gives, for an address a server of this loop listens on, an in-process channel whose
unary calls run the server's own method handler (requests and responses still go through the
serializers, errors still arrive as ``grpc.aio.AioRpcError`` with the server's status), saving the two
gRPC stacks a loopback call crosses (about a millisecond of CPU per call). Other addresses, and streaming
methods, get a real channel.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.api_core import exceptions as gexc

log = logging.getLogger("localcloud.grpc")

# Pub/Sub accepts 10 MB requests; leave headroom for framing, as the real front ends do.
MAX_MESSAGE_BYTES = 20 * 1024 * 1024

UnaryHandler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
StreamHandler = Callable[[AsyncIterator[Any], grpc.aio.ServicerContext], AsyncIterator[Any]]


def _deserializer(message_type: Any) -> Callable[[bytes], Any]:
    if hasattr(message_type, "deserialize"):  # proto-plus wrapper class
        return message_type.deserialize
    return message_type.FromString


def _serialize(message: Any) -> bytes:
    if hasattr(type(message), "serialize"):  # proto-plus message
        return type(message).serialize(message)
    return message.SerializeToString()


async def _abort(context: grpc.aio.ServicerContext, error: Exception, method: str) -> None:
    if isinstance(error, gexc.GoogleAPICallError) and error.grpc_status_code is not None:
        log.debug("%s -> %s %s", method, error.grpc_status_code.name, error.message)
        await context.abort(error.grpc_status_code, error.message)
    log.exception("%s failed", method)
    await context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")


def unary(handler: UnaryHandler, request_type: Any, method: str = "") -> grpc.RpcMethodHandler:
    name = method or getattr(handler, "__name__", "rpc")

    @functools.wraps(handler)
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if log.isEnabledFor(logging.DEBUG):  # rendering a request costs more than many handlers
            log.debug("%s %s", name, _short(request))
        try:
            return await handler(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as error:  # mapped to a status, never raised into grpc
            await _abort(context, error, name)

    return grpc.unary_unary_rpc_method_handler(
        call, request_deserializer=_deserializer(request_type), response_serializer=_serialize
    )


def stream_stream(handler: StreamHandler, request_type: Any, method: str = "") -> grpc.RpcMethodHandler:
    name = method or getattr(handler, "__name__", "rpc")

    async def call(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        log.debug("%s (stream opened)", name)
        try:
            async for response in handler(requests, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await _abort(context, error, name)

    return grpc.stream_stream_rpc_method_handler(
        call, request_deserializer=_deserializer(request_type), response_serializer=_serialize
    )


class _Service(grpc.GenericRpcHandler):
    def __init__(self, full_name: str, methods: Mapping[str, grpc.RpcMethodHandler]) -> None:
        self.full_name = full_name
        self.methods = {f"/{full_name}/{name}": handler for name, handler in methods.items()}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return self.methods.get(handler_call_details.method)


def service(full_name: str, methods: Mapping[str, grpc.RpcMethodHandler]) -> grpc.GenericRpcHandler:
    """``full_name`` as in the client's transport, e.g. ``google.pubsub.v1.Publisher``."""
    return _Service(full_name, methods)


@dataclass
class _LocalServer:
    loop: asyncio.AbstractEventLoop
    methods: dict[str, grpc.RpcMethodHandler]


_LOCAL_SERVERS: dict[str, _LocalServer] = {}


async def start_server(address: str, handlers: list[grpc.GenericRpcHandler]) -> grpc.aio.Server:
    """Bind ``host:port`` (port 0 picks a free one; read it back from ``bound_port``)."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_generic_rpc_handlers(handlers)
    port = server.add_insecure_port(address)
    server.bound_port = port
    await server.start()
    methods: dict[str, grpc.RpcMethodHandler] = {}
    for handler in handlers:
        if isinstance(handler, _Service):
            methods.update(handler.methods)
    key = f"{address.rpartition(':')[0] or '127.0.0.1'}:{port}"
    local = _LOCAL_SERVERS[key] = _LocalServer(asyncio.get_running_loop(), methods)
    stop = server.stop

    async def stop_and_forget(grace: float | None) -> None:
        if _LOCAL_SERVERS.get(key) is local:
            del _LOCAL_SERVERS[key]
        await stop(grace)

    server.stop = stop_and_forget
    return server


def channel(address: str) -> grpc.aio.Channel:
    """An in-process channel to a server of the running event loop at ``address``, else a real one."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    local = _LOCAL_SERVERS.get(address)
    if local is not None and local.loop is loop:
        return LocalChannel(address, local.methods)
    return grpc.aio.insecure_channel(address)


class _LocalContext:
    """What the handlers here use of ``grpc.aio.ServicerContext``."""

    def __init__(self, metadata: Sequence[tuple[str, str]], deadline: float | None) -> None:
        self._metadata = tuple(metadata)
        self._deadline = deadline
        self.status: tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]] | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return "local"

    def time_remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.status = (code, details, tuple(trailing_metadata))
        raise grpc.aio.AbortError()


def _rpc_error(
    code: grpc.StatusCode, details: str, trailing: Sequence[tuple[str, str]] = ()
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing), details=details, debug_error_string=None
    )


class _LocalUnaryUnary:
    def __init__(
        self,
        method: str,
        handler: grpc.RpcMethodHandler,
        request_serializer: Callable[[Any], bytes] | None,
        response_deserializer: Callable[[bytes], Any] | None,
    ) -> None:
        self._method = method
        self._handler = handler
        self._serialize = request_serializer or (lambda message: message)
        self._deserialize = response_deserializer or (lambda data: data)

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        **_: Any,
    ) -> Awaitable[Any]:
        return self._call(request, timeout, tuple(metadata or ()))

    async def _call(self, request: Any, timeout: float | None, metadata: tuple[tuple[str, str], ...]) -> Any:
        handler = self._handler
        assert handler.unary_unary is not None
        decode = handler.request_deserializer or (lambda data: data)
        encode = handler.response_serializer or (lambda message: message)
        try:
            decoded = decode(self._serialize(request))
        except Exception as error:
            raise _rpc_error(grpc.StatusCode.INTERNAL, f"Exception deserializing request: {error}") from None
        loop = asyncio.get_running_loop()
        context = _LocalContext(metadata, None if timeout is None else loop.time() + timeout)
        try:
            async with asyncio.timeout(timeout):
                response = await handler.unary_unary(decoded, context)
        except grpc.aio.AbortError:
            code, details, trailing = context.status or (grpc.StatusCode.UNKNOWN, "", ())
            raise _rpc_error(code, details, trailing) from None
        except TimeoutError:
            raise _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        except Exception as error:
            log.exception("%s failed", self._method)
            raise _rpc_error(grpc.StatusCode.UNKNOWN, f"Unexpected {type(error).__name__}: {error}") from None
        return self._deserialize(encode(response))


class LocalChannel(grpc.aio.Channel):
    """A ``grpc.aio.Channel`` whose unary calls run in process (see the module docstring); streaming
    methods and methods this server does not serve go through a real channel to ``address``."""

    def __init__(self, address: str, methods: Mapping[str, grpc.RpcMethodHandler]) -> None:
        self.address = address
        self._methods = methods
        self._remote: grpc.aio.Channel | None = None
        # Generated async transports append their logging interceptor here.
        self._unary_unary_interceptors: list[Any] = []

    def _real(self) -> grpc.aio.Channel:
        if self._remote is None:
            self._remote = grpc.aio.insecure_channel(self.address)
        return self._remote

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        **options: Any,
    ) -> Any:
        handler = self._methods.get(method)
        if handler is None or handler.unary_unary is None:
            return self._real().unary_unary(method, request_serializer, response_deserializer, **options)
        return _LocalUnaryUnary(method, handler, request_serializer, response_deserializer)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._real().unary_stream(method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._real().stream_unary(method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._real().stream_stream(method, *args, **kwargs)

    async def channel_ready(self) -> None:
        return None

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return grpc.ChannelConnectivity.READY

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await asyncio.Event().wait()  # the state never changes

    async def close(self, grace: float | None = None) -> None:
        if self._remote is not None:
            await self._remote.close(grace)

    async def __aenter__(self) -> LocalChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _short(message: Any, limit: int = 300) -> str:
    text = str(message).replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"
