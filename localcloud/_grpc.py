"""The thin gRPC shell every emulator uses: method tables built by hand from the message classes that
ship inside the ``google-cloud-*`` wheels (no .proto files, no code generation), served by ``grpc.aio``.

Handlers are ``async def Name(request, context) -> response`` and may raise any
``google.api_core.exceptions.GoogleAPICallError`` (``NotFound``, ``AlreadyExists``, ``InvalidArgument``,
…): the shell turns it into the gRPC status the real service would send, so clients raise the very same
exception. Any other exception becomes ``INTERNAL`` and is logged; it never takes the server down.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
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


def service(full_name: str, methods: Mapping[str, grpc.RpcMethodHandler]) -> grpc.GenericRpcHandler:
    """``full_name`` as in the client's transport, e.g. ``google.pubsub.v1.Publisher``."""
    return grpc.method_handlers_generic_handler(full_name, dict(methods))


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
    return server


def _short(message: Any, limit: int = 300) -> str:
    text = str(message).replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"
