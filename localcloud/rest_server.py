"""The REST surface of a gRPC emulator (Pub/Sub, Cloud Tasks, Secret Manager), transcoded from the APIs'
own ``google.api.http`` rules, so a client built with ``transport="rest"`` and plain HTTP/JSON requests as
Google documents them work against the emulator.

Each request is matched against the rules of the methods the emulator serves (``localcloud.transcoding``
reads them from the GAPIC package's REST transport: every additional binding too), turned into the gRPC
request message (path variables, the body the rule names, the query parameters converted from text to
their fields' types) and handed to the emulator's own gRPC method handler in process
(``_grpc.LocalChannel``): the same code as a gRPC call, validation and errors included. The response
message goes back as ProtoJSON (lowerCamel names, int64 as strings, bytes as base64).

What Google's REST front end does that is done here too:

- System parameters (https://cloud.google.com/apis/docs/system-parameters): ``$alt``/``alt`` ``json``
  (``json;enum-encoding=int``, which the GAPIC REST clients send, answers enums as numbers; any other
  format is 400), ``prettyPrint`` (default true: indented JSON) and ``$.xgafv``; ``fields``, ``key``,
  ``quotaUser``, ``access_token``, ``callback``, ``userIp`` and ``$``-prefixed ones are accepted and
  ignored. No token is checked, as on the gRPC port.
- Errors are Google's JSON error body ``{"error": {"code", "message", "status"}}`` with the HTTP code of
  the gRPC status (https://cloud.google.com/apis/design/errors#handling_errors); a request that does not
  fit its rule (malformed JSON, an unknown field, a query value of the wrong type) is 400
  INVALID_ARGUMENT; a path no rule matches is 404 NOT_FOUND; a body over ``_grpc.MAX_MESSAGE_BYTES`` 413.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message

from localcloud import _grpc
from localcloud import transcoding as tc
from localcloud._webapp import start_app
from localcloud.rest import google_error

log = logging.getLogger("localcloud.rest")

# The GAPIC transports whose rules each emulator's REST surface serves (only the methods it serves).
PUBSUB_TRANSPORTS = (
    "google.pubsub_v1.services.publisher.transports",
    "google.pubsub_v1.services.subscriber.transports",
    "google.pubsub_v1.services.schema_service.transports",
)
CLOUD_TASKS_TRANSPORTS = (
    "google.cloud.tasks_v2.services.cloud_tasks.transports",
    "google.cloud.tasks_v2beta3.services.cloud_tasks.transports",
)
SECRET_MANAGER_TRANSPORTS = ("google.cloud.secretmanager_v1.services.secret_manager_service.transports",)

# https://cloud.google.com/apis/design/errors#handling_errors
HTTP_CODES = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
# https://cloud.google.com/apis/docs/system-parameters (the $-prefixed forms are dropped by prefix)
_IGNORED_PARAMETERS = frozenset(
    {"fields", "key", "quotaUser", "access_token", "callback", "userIp", "upload_protocol", "uploadType"}
)


class _BadRequest(Exception):
    """A request Google's front end refuses before it reaches the API: 400 INVALID_ARGUMENT."""


@dataclass(frozen=True)
class Route:
    method: tc.RpcMethod
    rule: tc.HttpRule


@cache
def _gapic_methods(transports: tuple[str, ...], services: frozenset[str]) -> tuple[tc.RpcMethod, ...]:
    return tuple(m for module in transports for m in tc.methods_from_gapic(module, services))


def routes_for(transports: Sequence[str], served: Mapping[str, grpc.RpcMethodHandler]) -> tuple[Route, ...]:
    """A route per HTTP rule of every unary method in ``served`` (gRPC path → handler) that the GAPIC
    ``transports`` give a rule, each binding once; the most specific templates first (literal segments
    before ``*``, ``*`` before ``**``), so the first that matches a path is the one meant."""
    services = frozenset(path.split("/")[1] for path in served)
    found: dict[tuple[str, str], Route] = {}
    for method in _gapic_methods(tuple(transports), services):
        handler = served.get(method.path)
        if handler is None or handler.unary_unary is None:
            continue
        for rule in method.rules:
            found.setdefault((rule.method, rule.template.text), Route(method, rule))

    def specificity(route: Route) -> tuple[int, int, int]:
        flat = route.rule.template.flat_segments()
        return (flat.count("**"), flat.count("*"), -len(flat))

    return tuple(sorted(found.values(), key=specificity))


@dataclass(frozen=True)
class _Format:
    enums_as_numbers: bool = False
    pretty: bool = True


class RestSurface:
    """Routes REST requests to the gRPC methods of one emulator, run in process."""

    def __init__(self, routes: Iterable[Route], channel: grpc.aio.Channel) -> None:
        self._routes = tuple(routes)
        self._channel = channel
        self._calls: dict[str, grpc.aio.UnaryUnaryMultiCallable] = {}

    def match(self, verb: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self._routes:
            if route.rule.method != verb:
                continue
            variables = route.rule.template.match(path)
            if variables is not None:
                return route, variables
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        matched = self.match(request.method, request.rel_url.raw_path)
        if matched is None:
            return google_error(404, "NOT_FOUND", f"No method serves {request.method} {request.rel_url.path}")
        route, variables = matched
        try:
            output, query = _system_parameters(request.rel_url.query.items())
            body = await _json_body(request)
            fields = tc.query_from_text(route.method.request_type, query)
            message = tc.request_from_rest(route.method, route.rule, variables, fields, body)
        except (_BadRequest, tc.TranscodingError) as error:
            return google_error(400, "INVALID_ARGUMENT", str(error))
        except web.HTTPRequestEntityTooLarge:
            limit = _grpc.MAX_MESSAGE_BYTES
            return google_error(413, "INVALID_ARGUMENT", f"the request is larger than {limit} bytes")
        try:
            response = await self._unary(route.method)(message)
        except grpc.aio.AioRpcError as error:
            code = error.code()
            return google_error(HTTP_CODES.get(code, 500), code.name, error.details() or "")
        return _json_response(route.rule, response, output)

    def _unary(self, method: tc.RpcMethod) -> grpc.aio.UnaryUnaryMultiCallable:
        call = self._calls.get(method.path)
        if call is None:
            call = self._calls[method.path] = self._channel.unary_unary(
                method.path,
                request_serializer=_serialize,
                response_deserializer=method.response_type.FromString,
            )
        return call


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _system_parameters(pairs: Iterable[tuple[str, str]]) -> tuple[_Format, list[tuple[str, str]]]:
    """The response format the system parameters ask for, and the query parameters left for the request."""
    enums_as_numbers, pretty = False, True
    rest: list[tuple[str, str]] = []
    for name, value in pairs:
        bare = name.removeprefix("$")
        if bare == "alt":
            media, *options = (part.strip() for part in value.split(";"))
            if media != "json":
                raise _BadRequest(f"Invalid value for parameter alt: {value!r} (only json is served)")
            enums_as_numbers = "enum-encoding=int" in options
        elif bare == "prettyPrint":
            pretty = value.lower() not in ("false", "0")
        elif bare == ".xgafv":
            if value not in ("1", "2"):
                raise _BadRequest(f"Invalid value for parameter $.xgafv: {value!r}")
        elif bare not in _IGNORED_PARAMETERS and not name.startswith("$"):
            rest.append((name, value))
    return _Format(enums_as_numbers, pretty), rest


async def _json_body(request: web.Request) -> Any:
    """The decoded JSON body, None when there is none."""
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _BadRequest(f"Invalid JSON payload received. {error}") from None


def _json_response(rule: tc.HttpRule, response: Message, output: _Format) -> web.Response:
    codec = tc.Codec(
        parse=tc.JSON_FORMAT.parse,
        to_json=lambda message: json_format.MessageToDict(
            message, use_integers_for_enums=output.enums_as_numbers
        ),
    )
    document = tc.response_to_rest(rule, response, codec)
    text = json.dumps(document, indent=2 if output.pretty else None, ensure_ascii=False)
    return web.Response(text=text + "\n", content_type="application/json", charset="UTF-8")


def create_app(surface: RestSurface, routes: Iterable[web.RouteDef] = ()) -> web.Application:
    """``routes`` serve REST-only methods, which no GAPIC transport has a rule for (Cloud Tasks'
    BufferTask, ``localcloud.tasks.buffer``); they are matched before the transcoded ones."""
    app = web.Application(client_max_size=_grpc.MAX_MESSAGE_BYTES)
    app.router.add_routes(list(routes))
    app.router.add_route("*", "/{path:.*}", surface.handle)
    return app


def served_methods(handlers: Iterable[grpc.GenericRpcHandler]) -> dict[str, grpc.RpcMethodHandler]:
    """gRPC path → method handler of the tables ``_grpc.service`` builds."""
    served: dict[str, grpc.RpcMethodHandler] = {}
    for handler in handlers:
        served.update(getattr(handler, "methods", {}))
    return served


@dataclass
class RestServer:
    address: str
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.runner.cleanup()


class ServedTwice:
    """A gRPC emulator's running service with its REST surface beside it (``rest``: None when it serves
    none). Mixed into each service's dataclass, which declares both fields."""

    address: str
    server: grpc.aio.Server
    rest: RestServer | None

    async def stop(self) -> None:
        """The service's own ``stop`` adds what else it runs (a dispatcher, push workers)."""
        await self.stop_surfaces()

    async def open_rest(
        self,
        address: str,
        handlers: Iterable[grpc.GenericRpcHandler],
        transports: Sequence[str],
        extra_routes: Callable[[grpc.aio.Channel], Iterable[web.RouteDef]] | None = None,
    ) -> None:
        """Serve the REST surface (``serve``) beside the running gRPC server; if it cannot, the whole
        service stops and the error goes on."""
        try:
            self.rest = await serve(address, self.address, handlers, transports, extra_routes)
        except BaseException:
            await self.stop()
            raise

    @property
    def rest_address(self) -> str:
        return self.rest.address if self.rest is not None else ""

    async def stop_surfaces(self) -> None:
        """The REST surface, then the gRPC server (half a second's grace for calls in flight)."""
        if self.rest is not None:
            await self.rest.stop()
        await self.server.stop(grace=0.5)


async def serve(
    address: str,
    grpc_address: str,
    handlers: Iterable[grpc.GenericRpcHandler],
    transports: Sequence[str],
    extra_routes: Callable[[grpc.aio.Channel], Iterable[web.RouteDef]] | None = None,
) -> RestServer | None:
    """Serve on ``address`` (``host:port``, port 0 picks a free one; ``""`` serves nothing) the REST
    surface of the methods ``handlers`` serve on ``grpc_address``, with the rules of the GAPIC
    ``transports``, and the ``extra_routes`` built on the in-process channel to those handlers."""
    if not address:
        return None
    served = served_methods(handlers)
    channel = _grpc.LocalChannel(grpc_address, served)
    surface = RestSurface(routes_for(transports, served), channel)
    routes = extra_routes(channel) if extra_routes is not None else ()
    runner, bound = await start_app(create_app(surface, routes), address)
    log.info("REST surface of %s on %s", grpc_address, bound)
    return RestServer(bound, runner)
