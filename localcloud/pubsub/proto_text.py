"""Compile the text of a Pub/Sub protobuf schema (a ``.proto`` source) into a message class, in process.

The protobuf runtime cannot read ``.proto`` text, and protoc (``grpcio-tools``) is a heavy native
dependency, so this is a parser for the subset Google accepts for a Pub/Sub schema
(https://cloud.google.com/pubsub/docs/schemas: "you must define only one top-level type. Import statements
that reference other types are not supported"): ``syntax`` proto2 or proto3, ``package``, file and field
options, one top-level message with nested messages and enums, scalar, enum and message fields, ``repeated``
/ ``optional`` / ``required`` (proto2), proto3 ``optional``, ``oneof``, ``map<K, V>``, ``reserved``, proto2
defaults. Not accepted, each with INVALID_ARGUMENT naming line and column: ``import``, ``service``,
``extend``, groups, editions, custom options.

The parser only builds a ``FileDescriptorProto``; the protobuf runtime's descriptor pool then checks what
protoc would (duplicate field numbers and names, unresolved types, map keys), so those semantics are the
runtime's own. Reserved numbers and names are the exception: the pool accepts a field that uses one, so
the parser refuses it itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

FieldPb = descriptor_pb2.FieldDescriptorProto

SCALARS = {
    "double": FieldPb.TYPE_DOUBLE,
    "float": FieldPb.TYPE_FLOAT,
    "int64": FieldPb.TYPE_INT64,
    "uint64": FieldPb.TYPE_UINT64,
    "int32": FieldPb.TYPE_INT32,
    "fixed64": FieldPb.TYPE_FIXED64,
    "fixed32": FieldPb.TYPE_FIXED32,
    "bool": FieldPb.TYPE_BOOL,
    "string": FieldPb.TYPE_STRING,
    "bytes": FieldPb.TYPE_BYTES,
    "uint32": FieldPb.TYPE_UINT32,
    "sfixed32": FieldPb.TYPE_SFIXED32,
    "sfixed64": FieldPb.TYPE_SFIXED64,
    "sint32": FieldPb.TYPE_SINT32,
    "sint64": FieldPb.TYPE_SINT64,
}
LABELS = {
    "optional": FieldPb.LABEL_OPTIONAL,
    "required": FieldPb.LABEL_REQUIRED,
    "repeated": FieldPb.LABEL_REPEATED,
}
MAX_FIELD_NUMBER = 536_870_911
_TOKEN = re.compile(
    r"""(?P<space>\s+|//[^\n]*|/\*.*?\*/)
      | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
      | (?P<number>-?(?:0[xX][0-9a-fA-F]+|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?))
      | (?P<ident>\.?[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<symbol>[{}\[\]()<>;=,])""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "f": "\f"}
_ESCAPES |= {"v": "\v", "?": "?"}


class ProtoSyntaxError(ValueError):
    """The definition is not a ``.proto`` source this parser accepts; ``line`` and ``column`` from 1."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{message} (line {line}, column {column})")
        self.line = line
        self.column = column


@dataclass(frozen=True)
class Token:
    kind: str  # string, number, ident, symbol, end
    text: str
    line: int
    column: int


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    position, line, line_start = 0, 1, 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise ProtoSyntaxError(
                f"unexpected character {source[position]!r}", line, position - line_start + 1
            )
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), line, position - line_start + 1))
        text = match.group()
        newlines = text.count("\n")
        if newlines:
            line += newlines
            line_start = position + text.rfind("\n") + 1
        position = match.end()
    tokens.append(Token("end", "", line, position - line_start + 1))
    return tokens


def _unquote(token: Token) -> str:
    body = token.text[1:-1]
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char != "\\":
            out.append(char)
            index += 1
            continue
        code = body[index + 1]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            index += 2
        elif code in "xX":
            digits = re.match(r"[0-9a-fA-F]{1,2}", body[index + 2 :])
            if digits is None:
                raise ProtoSyntaxError("invalid \\x escape", token.line, token.column)
            out.append(chr(int(digits.group(), 16)))
            index += 2 + len(digits.group())
        elif code.isdigit():
            digits = re.match(r"[0-7]{1,3}", body[index + 1 :])
            assert digits is not None
            out.append(chr(int(digits.group(), 8)))
            index += 1 + len(digits.group())
        else:
            raise ProtoSyntaxError(f"invalid escape \\{code}", token.line, token.column)
    return "".join(out)


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = tokenize(source)
        self.index = 0
        self.file = descriptor_pb2.FileDescriptorProto(name="pubsub_schema.proto")
        self.syntax = "proto2"
        # type references to resolve once every type is known: (field, scope, name, token)
        self.references: list[tuple[descriptor_pb2.FieldDescriptorProto, str, str, Token]] = []
        self.types: dict[str, int] = {}  # full name -> FieldPb.TYPE_MESSAGE or TYPE_ENUM

    # ---- tokens ------------------------------------------------------------------------------

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def fail(self, message: str, token: Token | None = None) -> ProtoSyntaxError:
        where = token or self.token
        return ProtoSyntaxError(message, where.line, where.column)

    def next(self) -> Token:
        token = self.token
        if token.kind != "end":
            self.index += 1
        return token

    def at(self, text: str) -> bool:
        return self.token.kind in ("symbol", "ident") and self.token.text == text

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.index += 1
            return True
        return False

    def expect(self, text: str) -> Token:
        if not self.at(text):
            found = self.token.text or "end of definition"
            raise self.fail(f"expected {text!r}, found {found!r}")
        return self.next()

    def name(self, what: str) -> str:
        token = self.token
        if token.kind != "ident" or "." in token.text:
            raise self.fail(f"expected {what}, found {token.text or 'end of definition'!r}")
        return self.next().text

    def integer(self, what: str) -> int:
        token = self.token
        if token.kind != "number" or not re.fullmatch(r"-?(0[xX][0-9a-fA-F]+|\d+)", token.text):
            raise self.fail(f"expected {what}, found {token.text or 'end of definition'!r}")
        self.next()
        text = token.text
        negative = text.startswith("-")
        digits = text.lstrip("-")
        if digits[:2].lower() == "0x":
            value = int(digits, 16)
        elif len(digits) > 1 and digits.startswith("0"):
            value = int(digits, 8)
        else:
            value = int(digits)
        return -value if negative else value

    def constant(self) -> tuple[str, Token]:
        """An option value as the text protoc stores in ``default_value``."""
        token = self.next()
        if token.kind == "string":
            return _unquote(token), token
        if token.kind in ("number", "ident"):
            return token.text, token
        raise self.fail(f"expected a constant, found {token.text or 'end of definition'!r}", token)

    # ---- file --------------------------------------------------------------------------------

    def parse(self) -> descriptor_pb2.FileDescriptorProto:
        if self.accept("syntax"):
            self.expect("=")
            token = self.next()
            syntax = _unquote(token) if token.kind == "string" else ""
            if syntax not in ("proto2", "proto3"):
                raise self.fail(f'unknown syntax {token.text}: expected "proto2" or "proto3"', token)
            self.syntax = syntax
            self.expect(";")
        elif self.at("edition"):
            raise self.fail("editions are not supported in Pub/Sub schemas")
        if self.syntax == "proto3":
            self.file.syntax = "proto3"
        while self.token.kind != "end":
            token = self.token
            if self.accept(";"):
                continue
            if self.accept("package"):
                if self.file.package:
                    raise self.fail("more than one package statement", token)
                if self.token.kind != "ident":
                    raise self.fail("expected a package name")
                self.file.package = self.next().text
                self.expect(";")
            elif self.accept("option"):
                self.option()
            elif self.at("import"):
                raise self.fail("import statements are not supported in Pub/Sub schemas")
            elif self.accept("message"):
                self.message(self.file.message_type.add(), self.file.package)
            elif self.accept("enum"):
                self.enum(self.file.enum_type.add(), self.file.package)
            elif self.token.text in ("service", "extend", "syntax", "edition"):
                raise self.fail(f"{self.token.text!r} is not supported in Pub/Sub schemas")
            else:
                raise self.fail(f"unexpected {token.text!r}: expected a message")
        top_level = len(self.file.message_type) + len(self.file.enum_type)
        if top_level != 1 or len(self.file.message_type) != 1:
            raise self.fail(
                f"a Pub/Sub schema must define exactly one top-level message, found {top_level} top-level types"
            )
        self.resolve()
        return self.file

    def option(self) -> None:
        """``option name = constant;``; file and message options are accepted and ignored."""
        if self.at("("):
            raise self.fail("custom options are not supported in Pub/Sub schemas")
        if self.token.kind != "ident":
            raise self.fail("expected an option name")
        self.next()
        self.expect("=")
        self.constant()
        self.expect(";")

    def full(self, scope: str, name: str) -> str:
        full = f"{scope}.{name}" if scope else name
        if full in self.types:
            raise self.fail(f"{full!r} is already defined")
        return full

    # ---- messages ----------------------------------------------------------------------------

    def message(self, message: descriptor_pb2.DescriptorProto, scope: str) -> None:
        message.name = self.name("a message name")
        full = self.full(scope, message.name)
        self.types[full] = FieldPb.TYPE_MESSAGE
        self.expect("{")
        synthetic: list[descriptor_pb2.FieldDescriptorProto] = []
        while not self.accept("}"):
            token = self.token
            if token.kind == "end":
                raise self.fail(f"message {message.name!r} is not closed")
            if self.accept(";"):
                continue
            if self.accept("message"):
                self.message(message.nested_type.add(), full)
            elif self.accept("enum"):
                self.enum(message.enum_type.add(), full)
            elif self.accept("option"):
                self.option()
            elif self.accept("reserved"):
                self.reserved(message)
            elif self.accept("oneof"):
                self.oneof(message, full)
            elif self.at("map") and self.tokens[self.index + 1].text == "<":
                self.next()
                self.map_field(message, full)
            elif token.text in ("extensions", "extend", "group", "service", "import"):
                raise self.fail(f"{token.text!r} is not supported in Pub/Sub schemas")
            else:
                field = self.field(message, full, in_oneof=False)
                if field.proto3_optional:
                    synthetic.append(field)
        for field in message.field:
            if field.name in message.reserved_name or any(
                r.start <= field.number < r.end for r in message.reserved_range
            ):
                raise self.fail(f"field {field.name!r} ({field.number}) of {full!r} is reserved")
        # proto3 optional fields each get a synthetic oneof, after the real ones (descriptor.proto)
        for field in synthetic:
            field.oneof_index = len(message.oneof_decl)
            message.oneof_decl.add(name=f"_{field.name}")

    def field(
        self, message: descriptor_pb2.DescriptorProto, scope: str, in_oneof: bool
    ) -> descriptor_pb2.FieldDescriptorProto:
        start = self.token
        label_text = self.token.text if self.token.kind == "ident" and self.token.text in LABELS else ""
        if label_text:
            if in_oneof:
                raise self.fail(f"fields in a oneof take no label ({label_text!r})")
            self.next()
            if label_text == "required" and self.syntax == "proto3":
                raise self.fail("required fields are not allowed in proto3", start)
        elif self.syntax == "proto2" and not in_oneof:
            raise self.fail("expected a label (optional, required or repeated) on a proto2 field")
        type_token = self.next()
        if type_token.kind != "ident":
            raise self.fail(
                f"expected a field type, found {type_token.text or 'end of definition'!r}", type_token
            )
        if type_token.text == "group":
            raise self.fail("groups are not supported in Pub/Sub schemas", type_token)
        field = message.field.add(name=self.name("a field name"))
        self.expect("=")
        field.number = self.field_number()
        field.label = LABELS.get(label_text, FieldPb.LABEL_OPTIONAL)
        if label_text == "optional" and self.syntax == "proto3":
            field.proto3_optional = True
        self.set_type(field, scope, type_token)
        if self.accept("["):
            self.field_options(field)
        self.expect(";")
        return field

    def field_number(self) -> int:
        token = self.token
        number = self.integer("a field number")
        if not 1 <= number <= MAX_FIELD_NUMBER:
            raise self.fail(f"field number {number} is out of range (1 to {MAX_FIELD_NUMBER})", token)
        if 19000 <= number <= 19999:
            raise self.fail(
                "field numbers 19000 to 19999 are reserved for the protobuf implementation", token
            )
        return number

    def set_type(self, field: descriptor_pb2.FieldDescriptorProto, scope: str, token: Token) -> None:
        scalar = SCALARS.get(token.text)
        if scalar is not None:
            field.type = scalar
        else:
            self.references.append((field, scope, token.text, token))

    def field_options(self, field: descriptor_pb2.FieldDescriptorProto) -> None:
        while True:
            token = self.token
            if self.at("("):
                raise self.fail("custom options are not supported in Pub/Sub schemas")
            name = self.name("an option name")
            self.expect("=")
            value, value_token = self.constant()
            if name == "default":
                if self.syntax == "proto3":
                    raise self.fail("explicit default values are not allowed in proto3", token)
                field.default_value = value
            elif name == "json_name":
                field.json_name = value
            elif name in ("packed", "deprecated", "lazy", "unverified_lazy", "weak", "debug_redact"):
                if value not in ("true", "false"):
                    raise self.fail(f"option {name!r} takes true or false", value_token)
                if name == "packed":
                    field.options.packed = value == "true"
                elif name == "deprecated":
                    field.options.deprecated = value == "true"
            else:
                raise self.fail(f"unknown field option {name!r}", token)
            if self.accept("]"):
                return
            self.expect(",")

    def map_field(self, message: descriptor_pb2.DescriptorProto, scope: str) -> None:
        self.expect("<")
        key = self.next()
        if key.text not in SCALARS or key.text in ("double", "float", "bytes"):
            raise self.fail(f"invalid map key type {key.text!r}", key)
        self.expect(",")
        value = self.next()
        if value.kind != "ident":
            raise self.fail("expected a map value type", value)
        self.expect(">")
        name = self.name("a field name")
        self.expect("=")
        number = self.field_number()
        entry_name = "".join(part[:1].upper() + part[1:] for part in name.split("_")) + "Entry"
        entry = message.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        self.types[self.full(scope, entry_name)] = FieldPb.TYPE_MESSAGE
        entry.field.add(name="key", number=1, label=FieldPb.LABEL_OPTIONAL, type=SCALARS[key.text])
        value_field = entry.field.add(name="value", number=2, label=FieldPb.LABEL_OPTIONAL)
        self.set_type(value_field, f"{scope}.{entry_name}" if scope else entry_name, value)
        field = message.field.add(name=name, number=number, label=FieldPb.LABEL_REPEATED)
        field.type = FieldPb.TYPE_MESSAGE
        field.type_name = f".{scope}.{entry_name}" if scope else f".{entry_name}"
        if self.accept("["):
            self.field_options(field)
        self.expect(";")

    def oneof(self, message: descriptor_pb2.DescriptorProto, scope: str) -> None:
        index = len(message.oneof_decl)
        message.oneof_decl.add(name=self.name("a oneof name"))
        self.expect("{")
        while not self.accept("}"):
            if self.token.kind == "end":
                raise self.fail("oneof is not closed")
            if self.accept(";"):
                continue
            if self.accept("option"):
                self.option()
                continue
            self.field(message, scope, in_oneof=True).oneof_index = index

    def reserved(self, target: descriptor_pb2.DescriptorProto | descriptor_pb2.EnumDescriptorProto) -> None:
        # a message's reserved range excludes its end, an enum's includes it (descriptor.proto)
        past_end = 0 if isinstance(target, descriptor_pb2.EnumDescriptorProto) else 1
        while True:
            token = self.token
            if token.kind == "string":
                target.reserved_name.append(_unquote(self.next()))
            else:
                start = self.integer("a reserved number or name")
                end = start
                if self.accept("to"):
                    end = (
                        MAX_FIELD_NUMBER
                        if self.accept("max")
                        else self.integer("the end of a reserved range")
                    )
                if end < start:
                    raise self.fail(f"reserved range {start} to {end} is empty", token)
                target.reserved_range.add(start=start, end=end + past_end)
            if self.accept(";"):
                return
            self.expect(",")

    # ---- enums -------------------------------------------------------------------------------

    def enum(self, enum: descriptor_pb2.EnumDescriptorProto, scope: str) -> None:
        enum.name = self.name("an enum name")
        self.types[self.full(scope, enum.name)] = FieldPb.TYPE_ENUM
        self.expect("{")
        while not self.accept("}"):
            token = self.token
            if token.kind == "end":
                raise self.fail(f"enum {enum.name!r} is not closed")
            if self.accept(";"):
                continue
            if self.accept("option"):
                if self.at("allow_alias"):
                    self.next()
                    self.expect("=")
                    enum.options.allow_alias = self.constant()[0] == "true"
                    self.expect(";")
                else:
                    self.option()
                continue
            if self.accept("reserved"):
                self.reserved(enum)
                continue
            value = enum.value.add(name=self.name("an enum value name"))
            self.expect("=")
            value.number = self.integer("an enum value number")
            if self.accept("["):
                while not self.accept("]"):
                    self.next()
            self.expect(";")
            if self.syntax == "proto3" and len(enum.value) == 1 and value.number != 0:
                raise self.fail(f"the first value of a proto3 enum must be zero ({enum.name})", token)
        if not enum.value:
            raise self.fail(f"enum {enum.name!r} has no values")

    # ---- names -------------------------------------------------------------------------------

    def resolve(self) -> None:
        """Protobuf scoping: a relative name is looked up from the innermost scope outwards."""
        for field, scope, name, token in self.references:
            found = ""
            if name.startswith("."):
                found = name[1:] if name[1:] in self.types else ""
            else:
                parts = scope.split(".") if scope else []
                while True:
                    candidate = ".".join([*parts, name])
                    if candidate in self.types:
                        found = candidate
                        break
                    if not parts:
                        break
                    parts.pop()
            if not found:
                raise self.fail(f"{name!r} is not defined", token)
            field.type = self.types[found]
            field.type_name = f".{found}"


def parse_proto(source: str) -> descriptor_pb2.FileDescriptorProto:
    """The ``FileDescriptorProto`` of ``source``; ``ProtoSyntaxError`` when it is not accepted."""
    return _Parser(source).parse()


def message_class(file: descriptor_pb2.FileDescriptorProto, root: str = "") -> type[Message]:
    """The class of the top-level message (or of ``root``, a full name) of ``file``, built in a pool of
    its own; ``ValueError`` with the runtime's reason when the descriptor does not build."""
    pool = descriptor_pool.DescriptorPool()
    try:
        pool.Add(file)
        name = root or ".".join(part for part in (file.package, file.message_type[0].name) if part)
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    except (TypeError, KeyError) as error:
        raise ValueError(
            str(error).removeprefix("Couldn't build proto file into descriptor pool: ")
        ) from None


def compile_proto(source: str) -> type[Message]:
    return message_class(parse_proto(source))


def compiled_set_class(compiled: bytes, root: str) -> type[Message]:
    """The class of ``root`` in a serialized ``FileDescriptorSet`` (``Schema.compiled_proto_schema``)."""
    files = descriptor_pb2.FileDescriptorSet.FromString(compiled)
    pool = descriptor_pool.DescriptorPool()
    try:
        for file in files.file:
            pool.Add(file)
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(root))
    except (TypeError, KeyError) as error:
        raise ValueError(
            str(error).removeprefix("Couldn't build proto file into descriptor pool: ")
        ) from None
