"""The embedded AWS emulator (moto server) used by `migrator demo` and the tests.

**It serves HTTPS**, as every AWS endpoint does. At start it makes a private CA and a certificate for
``127.0.0.1`` and ``localhost`` (:mod:`migrator.dev.tls`), writes the CA's PEM bundle into a private
temporary directory (``Emulator.ca_bundle``, removed by ``Emulator.stop()``) and serves moto's app
with werkzeug's threaded server over TLS: ``Emulator.endpoint`` is ``https://127.0.0.1:<port>``.
Clients trust the CA through the standard ``AWS_CA_BUNDLE`` variable (boto3, botocore, the Terraform
AWS provider and S3 backend read it); ``start_emulator(tls=False)`` serves plain HTTP instead.

Adjustments, each restoring an AWS behaviour moto lacks (docs/architecture.md, "The emulator"):

* **Bucket policies know ``aws:SecureTransport``.** moto evaluates a bucket policy for object
  requests with no request context at all, so a condition on the transport could not hold or fail
  as it does on AWS. Here a WSGI middleware around moto's app records, for the request's thread,
  whether the request came over TLS, and bucket-policy evaluation gets ``aws:SecureTransport``:
  ``true`` over TLS, ``false`` over plain HTTP (no value for a call that did not come through the
  emulator's server). Other keys are absent from the context, as keys are that a request lacks.

* **A bucket-policy statement whose Condition does not hold does not apply.** moto's
  ``IAMPolicyStatement`` answers DENIED whenever a statement's condition fails to match, for an
  Allow statement and for a Deny whose condition is false alike, and it treats an operator it does
  not know (``Bool`` among them), and a key the request does not carry, as holding: a TLS-only deny
  (``Deny s3:*`` if ``aws:SecureTransport`` is ``false``) refused every object GET and PUT, over TLS
  or not. On AWS a statement applies only when its condition holds, and then Deny wins over Allow.
  Here a bucket policy is evaluated that way (:func:`conditions_match`: String*, Arn*, Bool, Null,
  ``IfExists``, ``ForAnyValue:``/``ForAllValues:``, an absent key failing all but the negated
  operators; a condition with another operator does not hold, and is logged). Only bucket policies
  (``FakeBucket.get_permission``) change: moto's IAM evaluations (identity policies, role trust
  policies with ``sts:ExternalId``) keep moto's IAMPolicyStatement as it is.

* **Stream records are kept.** moto "delivers" a DynamoDB stream's records to every Lambda event
  source mapping on the table (even a disabled one) by invoking the function in Docker, and then
  DISCARDS the records from the shard whatever the outcome. Without Docker the records are simply
  lost, which no real stream does. Here moto's own delivery does nothing, so the stream keeps its
  records (24 h on AWS; for the emulator's life here) for every reader: `migrator replicate --local`,
  `migrator redrive`, and the Lambda runtime below, which reads them through GetRecords as Lambda does.

* **Event source mappings run, as Lambda runs them** (:mod:`migrator.dev.lambda_runtime`). moto
  stores mappings and never executes one without Docker. The emulator polls every ENABLED mapping
  on a DynamoDB stream through the Streams API (shards in order, parents first, TRIM_HORIZON, up to
  BatchSize records within MaximumBatchingWindowInSeconds), invokes the function as it is deployed
  (handler, environment, timeout and code read back from the Lambda API, the zip checked against its
  CodeSha256) in a separate, warm interpreter that can import only the zip, boto3 and the stdlib, and
  applies the mapping's settings: ReportBatchItemFailures, retries with BisectBatchOnFunctionError,
  MaximumRetryAttempts, MaximumRecordAgeInSeconds, the on-failure destination (an S3 object in
  Lambda's invocation-record shape), and the AWS/Lambda metrics IteratorAge, Invocations, Errors and
  Duration. ``start_emulator(run_lambda=False)`` leaves mappings stored only, as before.

* **Stream records name binary keys by their bytes.** moto builds a stream record's ``Keys`` from
  the key's JSON form, which is already base64 text, and the wire encoding base64-encodes it again:
  a reader got ``{"B": b"AP8="}`` for the key ``b"\\x00\\xff"`` (``NewImage`` and ``OldImage`` were
  right). DynamoDB Streams carries the key's bytes, the same as the images; so here ``Keys`` holds
  the raw key values, exactly as the images do.

* **ImportTable decodes each line as JSON.** moto's import parses the DynamoDB-JSON files of an
  export with py_partiql_parser's ``JsonParser``, which leaves string escapes undecoded: ``\\u540d``
  became the six characters ``\\u540d`` in the imported table, and a value holding ``\\"``, ``\\\\``,
  ``\\n``, tabs or control characters was cut or mangled, while binary values stayed base64 text (so
  a later PutItem of the same binary key made a second item). DynamoDB's ImportTable reads one JSON
  document per line; here every line is decoded with the standard ``json`` module, its binary values
  (``B``, ``BS``, nested too) turned into bytes as a PutItem request's are, and put into the table.
  moto's bookkeeping stays: processed, imported and error counts (ProcessedSizeBytes counts the
  bytes of the lines read), the failure message of a bad line, COMPLETED or FAILED.

* **ListImports exists.** moto implements ImportTable and DescribeImport but not ListImports (it
  answers an HTTP 500, which botocore retries for minutes). DynamoDB lists a table's imports, and
  phase 3 finds an import it did not see finish that way (a Terraform wait that ran out, a killed
  run); here ListImports lists moto's imports (of one table, with ``TableArn``), with their start time.

* **Conditional writes are atomic.** moto checks a PutObject's (or DeleteObject's) ``If-Match`` or
  ``If-None-Match`` and then writes, in two steps a second request can run between: two writers of
  the same ETag could both succeed, one overwriting the other. S3 applies the condition and the write
  as one; here conditional object writes run one at a time, so exactly one of two such writers wins
  and the other gets 412 (the migration document's compare-and-swap and the migration lock rely on it).

* **DynamoDB and DynamoDB Streams answer at a service's speed.** moto 5.2 builds every response by walking
  its botocore shape and looking up each value of each member through six alias providers, with a raised
  and caught ``KeyError`` for every missing candidate: an ``AttributeValue`` has ten members and holds one,
  so a DynamoDB Streams ``GetRecords`` page of 1,000 records took about 1.7 s where the service answers in
  milliseconds, and Scan, Query and BatchGetItem paid the same per item; the drain of a cutover, the gate
  and the emulated Lambda, which read whole streams, were bound by it. Here the candidate keys of a member
  are worked out once (by moto's own providers) and ``AttributeValue`` maps take a lean walk that applies
  moto's rules; the bodies are moto's, byte for byte (``tests/test_emulator_speed.py``).

* **A segmented Scan hashes a binary partition key.** moto assigns an item to a ``Segment`` by an
  MD5 of its partition key's value encoded as text, and a ``B`` key is stored as bytes, so a parallel
  Scan of a table whose HASH key is binary failed with ``'bytes' object has no attribute 'encode'``
  (an HTTP 500). DynamoDB segments any key type; here a binary key's bytes are hashed as they are
  (string and number keys keep moto's assignment), so each item falls in exactly one segment.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import gzip
import json
import logging
import re
import socket
import ssl
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .lambda_runtime import LambdaRuntime, MappingStats
    from .tls import EmulatorTLS

_patched = False
_patch_lock = threading.Lock()
_running: dict[str, Emulator] = {}


# --------------------------------------------------------------------------------------------------
# Adjustments of moto
# --------------------------------------------------------------------------------------------------


def _store_not_execute() -> None:
    """Stream records are kept: moto's own delivery to event source mappings does nothing."""
    from moto.awslambda.models import LambdaBackend

    def send_dynamodb_items(self: Any, function_arn: str, items: list[Any], source: str) -> str:
        return ""  # falsy: the shard keeps its records

    LambdaBackend.send_dynamodb_items = send_dynamodb_items  # type: ignore[method-assign]


def _stream_keys_carry_bytes() -> None:
    """Stream records name binary keys by their bytes (``Keys`` built from raw values, as the images are)."""
    from moto.dynamodb.models.table import StreamRecord

    original = StreamRecord.__init__

    def __init__(self: Any, table: Any, stream_type: str, event_name: str, old: Any, new: Any, seq: int) -> None:
        original(self, table, stream_type, event_name, old, new, seq)
        item = old if old is not None else new
        keys = {table.hash_key_attr: {item.hash_key.type: item.hash_key.value}}
        if table.range_key_attr is not None and item.range_key is not None:
            keys[table.range_key_attr] = {item.range_key.type: item.range_key.value}
        self.record["dynamodb"]["Keys"] = keys

    StreamRecord.__init__ = __init__  # type: ignore[method-assign]


def request_form(value: Any) -> Any:
    """An AttributeValue decoded from DynamoDB JSON in the form a PutItem request reaches moto's backend:
    ``B`` and ``BS`` members (at any depth) as bytes, everything else as JSON gives it."""
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(f"not an AttributeValue: {value!r}")
    ((tag, inner),) = value.items()
    if tag == "B":
        return {"B": base64.b64decode(inner, validate=True)}
    if tag == "BS":
        return {"BS": [base64.b64decode(v, validate=True) for v in inner]}
    if tag == "M":
        return {"M": {k: request_form(v) for k, v in inner.items()}}
    if tag == "L":
        return {"L": [request_form(v) for v in inner]}
    return {tag: inner}


def _import_decodes_json() -> None:
    """ImportTable decodes each line of the export's files with the standard json module."""
    from moto.dynamodb.models.table_import import TableImport

    def _process_s3_files(self: Any, s3_backend: Any, bucket: Any) -> None:
        from moto.dynamodb.models import dynamodb_backends

        dynamo = dynamodb_backends[self.account_id][self.region_name]
        self.table = dynamo.create_table(  # as moto's own import creates it
            name=self.table_name,
            billing_mode=self.billing_mode,
            throughput=self.throughput,
            schema=self.key_schema,
            global_indexes=self.global_indexes,
            indexes=None,
            attr=self.attrs,
            sse_specification=None,
            streams=None,
            tags=[],
            deletion_protection_enabled=False,
            warm_throughput=None,
        )
        keys, _, _, _ = s3_backend.list_objects(
            bucket, prefix=self.s3_source.get("S3KeyPrefix"), delimiter=None, marker=None, max_keys=None
        )
        for key in keys:
            data = gzip.decompress(key.value) if self.compression_type == "GZIP" else key.value
            # One JSON document per line. A raw newline cannot occur inside a JSON string, so "\n" is
            # the only separator (str.splitlines would also split on U+2028 and friends).
            for line in data.decode("utf-8").split("\n"):
                if not line.strip():
                    continue
                try:
                    self.processed_count += 1
                    self.processed_bytes += len(line.encode("utf-8"))
                    document = json.loads(line)
                    item = {name: request_form(v) for name, v in document["Item"].items()}
                    self.table.put_item(item_attrs=item)
                    self.imported_count += 1
                except Exception as e:  # moto's bookkeeping: the item is counted as an error
                    self.failure_message = str(e)
                    self.error_count += 1
        self.status = "COMPLETED" if self.error_count == 0 else "FAILED"

    TableImport._process_s3_files = _process_s3_files  # type: ignore[method-assign]


def _segments_hash_binary_keys() -> None:
    """A segmented Scan hashes a binary partition key's bytes (text keys keep moto's assignment)."""
    from moto.dynamodb.models.dynamo_type import Item
    from moto.utilities.utils import md5_hash

    def is_within_segment(self: Any, segments: tuple[Any, Any]) -> bool:
        if segments == (None, None):
            return True
        segment, total_segments = segments
        value = self.hash_key.value
        if isinstance(value, bytes | bytearray):
            data = bytes(value)
        elif self.hash_key.type == "B":
            data = base64.b64decode(value)  # an item that reached moto as base64 text
        else:
            data = str(value).encode("utf8")
        return bool(segment == md5_hash(data).digest()[0] % total_segments)

    Item.is_within_segment = is_within_segment  # type: ignore[method-assign]


def _list_imports() -> None:
    """ListImports exists: moto's imports listed (by table), each with the time it started."""
    import time

    from moto.core.responses import ActionResult
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoDBBackend.import_table

    def import_table(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.time()
        table_import: Any = original(self, *args, **kwargs)
        table_import.start_time = started
        return table_import

    def list_imports(self: Any) -> Any:
        table_arn = self.body.get("TableArn")
        summaries = [
            {
                "ImportArn": i.arn,
                "ImportStatus": i.status,
                "TableArn": i.table_arn,
                "S3BucketSource": {
                    "S3Bucket": i.s3_source.get("S3Bucket"),
                    "S3KeyPrefix": i.s3_source.get("S3KeyPrefix"),
                },
                "InputFormat": "DYNAMODB_JSON",
                "StartTime": getattr(i, "start_time", None),
            }
            for i in self.dynamodb_backend.table_imports.values()
            if table_arn in (None, i.table_arn)
        ]
        return ActionResult({"ImportSummaryList": summaries})

    DynamoDBBackend.import_table = import_table  # type: ignore[method-assign]
    DynamoHandler.list_imports = list_imports  # type: ignore[attr-defined]


# Bucket policies as AWS evaluates them ------------------------------------------------------------

_request = threading.local()  # per request thread: did the request come over TLS (``secure``)?

_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike"}
_POSITIVE_OF = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _glob(pattern: str, value: str) -> bool:
    """IAM's wildcard match: ``*`` any run of characters, ``?`` one character, nothing else special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def _compare(operator: str, expected: str, actual: str) -> bool:
    if operator == "StringEquals":
        return expected == actual
    if operator == "StringEqualsIgnoreCase":
        return expected.lower() == actual.lower()
    if operator in ("StringLike", "ArnEquals", "ArnLike"):  # ArnEquals matches wildcards as ArnLike does
        return _glob(expected, actual)
    if operator == "Bool":
        return expected.lower() == actual.lower()
    raise KeyError(operator)


def _condition_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


_unevaluated: set[str] = set()


def conditions_match(conditions: Mapping[str, Any] | None, context: Mapping[str, str | Sequence[str]]) -> bool:
    """Whether a policy statement's ``Condition`` block holds for a request whose context keys are
    ``context``, as IAM evaluates it: every operator and every key in it must hold (AND), any one of a
    key's values may match (OR); keys are case-insensitive. A key absent from the context fails the
    condition, except under a negated operator (``StringNotEquals``…), ``…IfExists``, ``ForAllValues:``
    or ``Null: true``. Operators evaluated: String(Not)Equals(IgnoreCase), String(Not)Like,
    Arn(Not)Equals, Arn(Not)Like, Bool, Null, with ``IfExists`` and ``ForAnyValue:``/``ForAllValues:``.
    A condition with any other operator (Numeric…, Date…, IpAddress…) does not hold (logged once)."""
    if not conditions:
        return True
    known = {k.lower(): ([v] if isinstance(v, str) else list(v)) for k, v in context.items()}
    for raw_operator, keys in conditions.items():
        qualifier, _, operator = str(raw_operator).rpartition(":")
        if_exists = operator.endswith("IfExists") and operator != "IfExists"
        operator = operator.removesuffix("IfExists") if if_exists else operator
        if not isinstance(keys, Mapping):
            return False
        for key, values in keys.items():
            expected = [_condition_value(v) for v in (values if isinstance(values, list) else [values])]
            actual = known.get(str(key).lower())
            if operator == "Null":
                if (actual is None) != any(e.lower() == "true" for e in expected):
                    return False
                continue
            positive = _POSITIVE_OF.get(operator, operator)
            if positive not in ("StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike", "Bool"):
                if raw_operator not in _unevaluated:
                    _unevaluated.add(raw_operator)
                    logging.getLogger("migrator.dev.emulator").warning(
                        "bucket policy condition operator %s is not evaluated by the emulator: "
                        "a statement using it does not apply",
                        raw_operator,
                    )
                return False
            if actual is None:
                if not (if_exists or operator in _NEGATED or qualifier == "ForAllValues"):
                    return False
                continue

            def hits(value: str, op: str = positive, exp: list[str] = expected) -> bool:
                return any(_compare(op, e, value) for e in exp)

            # ForAllValues: every value of the request's; a single-valued key or ForAnyValue: any of them
            held = all(hits(a) for a in actual) if qualifier == "ForAllValues" else any(hits(a) for a in actual)
            if operator in _NEGATED:
                held = not held
            if not held:
                return False
    return True


def _listed(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _bucket_policy_permission(policy: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str]) -> Any:
    """A bucket policy's verdict on ``action`` on ``resource`` (moto's PermissionResult): DENIED if a
    Deny statement applies, else PERMITTED if an Allow statement applies, else NEUTRAL. A statement
    applies when its Action (case-insensitive) or NotAction, its Resource or NotResource, its Principal
    (as moto checks it: ``"*"`` or a principal map; the caller is not known here) and its Condition all
    match."""
    from moto.iam.access_control import PermissionResult

    statements = policy.get("Statement", [])
    permitted = False
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, Mapping):
            continue
        if "NotAction" in statement:
            concerned = not any(_glob(a.lower(), action.lower()) for a in _listed(statement["NotAction"]))
        else:
            concerned = any(_glob(a.lower(), action.lower()) for a in _listed(statement.get("Action", [])))
        principal = statement.get("Principal")
        if not concerned or (isinstance(principal, str) and principal != "*"):
            continue
        if "NotResource" in statement:
            if any(_glob(r, resource) for r in _listed(statement["NotResource"])):
                continue
        elif not any(_glob(r, resource) for r in _listed(statement.get("Resource", []))):
            continue
        if not conditions_match(statement.get("Condition"), context):
            continue  # on AWS a statement whose condition does not hold does not apply, Allow or Deny
        if statement.get("Effect") == "Deny":
            return PermissionResult.DENIED
        if statement.get("Effect") == "Allow":
            permitted = True
    return PermissionResult.PERMITTED if permitted else PermissionResult.NEUTRAL


def _bucket_policies_as_aws() -> None:
    """Bucket policies know ``aws:SecureTransport``, and a statement whose Condition does not hold does
    not apply (moto's IAMPolicyStatement stays as it is for IAM's own evaluations)."""
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        context: dict[str, str] = {}
        secure = getattr(_request, "secure", None)
        if secure is not None:  # None: not a request through the emulator's server (moto in-process)
            context["aws:SecureTransport"] = "true" if secure else "false"
        return _bucket_policy_permission(json.loads(self.policy), action, resource, context)

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


class _RecordTransport:
    """WSGI middleware around moto's app: records, for the request's thread, whether it came over TLS."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        _request.secure = environ.get("wsgi.url_scheme") == "https"
        try:
            return self.app(environ, start_response)  # moto answers in full before returning
        finally:
            _request.secure = None


def _conditional_writes_are_atomic() -> None:
    """Conditional object writes are atomic: a PutObject/DeleteObject carrying If-Match or If-None-Match
    checks and writes while no other conditional write runs."""
    from moto.s3.responses import S3Response

    lock = threading.Lock()

    def atomic(original: Any) -> Any:
        def handler(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self.headers.get("If-Match") or self.headers.get("If-None-Match"):
                with lock:
                    return original(self, *args, **kwargs)
            return original(self, *args, **kwargs)

        return handler

    S3Response.put_object = atomic(S3Response.put_object)  # type: ignore[method-assign]
    S3Response.delete_object = atomic(S3Response.delete_object)  # type: ignore[method-assign]


#: moto's own functions that :func:`_responses_at_service_speed` replaces, kept for the test that compares the
#: responses of both (``tests/test_emulator_speed.py``).
MOTO_ORIGINALS: dict[str, Any] = {}


class _NotLean(Exception):
    """A value the lean path does not serialize; moto's serializer does it instead."""


def _responses_at_service_speed() -> None:
    """DynamoDB and DynamoDB Streams answer at a service's speed: items are serialized without moto's per-value
    key search.

    moto 5.2 serializes a response by walking its botocore shape and, for every value of every member, asks
    six alias providers which keys of the Python object might hold it (``AttributePicker.get_possible_keys``),
    then reads each candidate with a lookup that raises and catches ``KeyError`` when it is missing. An
    ``AttributeValue`` has ten members and holds one, so every attribute of every item costs dozens of
    exceptions: a DynamoDB Streams ``GetRecords`` page of 1,000 records (two images each) took about 1.7 s,
    reading a 10,000-record stream 17 s, where DynamoDB Streams answers a page in milliseconds; Scan, Query,
    GetItem and BatchGetItem paid the same per item. The drain of a cutover, the cutover gate and the
    emulated Lambda, which read whole streams, were bound by it.

    Here, for a plain ``dict``, the candidate keys of a member are worked out by moto's own providers once per
    member (they depend on the member and its shapes, never on the values) and read with ``dict.get``; and an
    ``AttributeValue`` held in a ``dict`` is serialized by a lean walk of its shape that applies moto's rules
    (member order, strings, base64 blobs, sets, lists, maps, missing and ``None`` members, response
    transformers) without the bookkeeping. Anything else goes through moto's serializer as before. The
    response is moto's, byte for byte: ``tests/test_emulator_speed.py`` compares the bodies of both ways."""
    from moto.core.constants import MISSING
    from moto.core.serialize import DEFAULT_ALIAS_PROVIDERS, BaseJSONSerializer, XFormedAttributePicker
    from moto.core.utils import get_value

    original_keys = XFormedAttributePicker.get_possible_keys
    original_call = XFormedAttributePicker.__call__
    original_structure = BaseJSONSerializer._serialize_type_structure
    MOTO_ORIGINALS.update(
        get_possible_keys=original_keys, pick=original_call, serialize_type_structure=original_structure
    )
    remembered: dict[tuple[Any, ...], tuple[str, ...]] = {}

    def possible_keys(picker: Any, context: Any) -> Any:
        """moto's candidate keys; for a ``dict`` and moto's default providers, computed once per member."""
        if type(context.obj) is not dict or picker.alias_providers is not DEFAULT_ALIAS_PROVIDERS:
            return original_keys(picker, context)
        shape = context.shape
        parent = getattr(shape, "parent", None)
        memo = (
            getattr(context.service_model, "service_name", None),
            context.key,
            None if shape is None else (shape.name, shape.type_name, shape.serialization.get("name")),
            None if parent is None else (getattr(parent, "name", None), getattr(parent, "type_name", None)),
        )
        keys = remembered.get(memo)
        if keys is None:
            keys = remembered[memo] = tuple(original_keys(picker, context))
        return keys

    def first(obj: dict[str, Any], keys: tuple[str, ...]) -> Any:
        for key in keys:
            found = get_value(obj, key, MISSING) if "." in key else obj.get(key, MISSING)
            if found is not MISSING:
                return found
        return None

    def pick(picker: Any, context: Any) -> Any:
        """``AttributePicker.__call__``: for a ``dict``, ``dict.get`` over the remembered candidates (moto raised
        and caught a ``KeyError`` for each missing one), then moto's response transformers."""
        obj = context.obj
        if type(obj) is not dict:
            return original_call(picker, context)
        value = first(obj, possible_keys(picker, context))
        key_path = f"{context.key_path}.{context.key}"
        for transform_path, transform in picker.response_transformers.items():
            if key_path.endswith(transform_path):
                return transform(value)
        return value

    class _Context:
        """The fields of moto's ``AttributePickerContext`` that the picker reads."""

        __slots__ = ("key", "key_path", "obj", "operation_model", "service_model", "shape")

        def __init__(self, serializer: Any, obj: Any, key: str, shape: Any) -> None:
            self.obj, self.key, self.shape, self.key_path = obj, key, shape, ""
            self.operation_model = serializer.operation_model
            self.service_model = serializer.operation_model.service_model

    #: Per service and structure shape: (member key, member shape, candidate keys, serialized name), in order.
    members: dict[tuple[str, str], list[tuple[str, Any, tuple[str, ...], str]]] = {}

    def members_of(serializer: Any, shape: Any, value: dict[str, Any]) -> list[tuple[str, Any, tuple[str, ...], str]]:
        memo = (serializer.operation_model.service_model.service_name, shape.name)
        found = members.get(memo)
        if found is None:
            found = []
            for member_key, member_shape in shape.members.items():
                member_shape.parent = shape  # as moto's walk sets it, before its providers read it
                keys = tuple(
                    possible_keys(serializer._value_picker, _Context(serializer, value, member_key, member_shape))
                )
                found.append((member_key, member_shape, keys, serializer.get_serialized_name(member_shape, member_key)))
            members[memo] = found
        return found

    def lean(serializer: Any, value: Any, shape: Any) -> Any:
        """What moto's JSON serializer writes for ``value`` of ``shape`` (MISSING where it writes nothing)."""
        kind = shape.type_name
        if kind == "structure":
            if value is None:
                return MISSING
            if type(value) is not dict or shape.is_document_type:
                raise _NotLean
            out: dict[str, Any] = {}
            for _key, member_shape, keys, name in members_of(serializer, shape, value):
                member = first(value, keys)
                if member is None:
                    continue
                done = lean(serializer, member, member_shape)
                if done is not MISSING:
                    out[name] = done
            return out
        if kind == "string":
            if isinstance(value, enum.Enum):
                value = value.value
            return str(value) if value not in [None, {}, []] else value
        if kind == "blob":
            return serializer._base64(value)
        if kind == "boolean":
            return value
        if kind == "list":
            # moto serializes each item under the member's name and takes the raw item when nothing landed there
            named = serializer.get_serialized_name(shape.member, shape.member.name) == shape.member.name
            items = []
            for item in value:
                done = lean(serializer, item, shape.member)
                items.append(item if done is MISSING or not named else done)
            return items
        if kind == "map":
            mapped: dict[str, Any] = {}
            for sub_key, sub_value in value.items():
                done = lean(serializer, sub_value, shape.value)
                if done is not MISSING:
                    mapped[serializer.get_serialized_name(shape.value, sub_key)] = done
            return mapped
        raise _NotLean

    def serialize_type_structure(serializer: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        picker = serializer._value_picker
        if (
            key
            and shape.name == "AttributeValue"
            and type(value) is dict
            and type(picker) is XFormedAttributePicker
            and picker.alias_providers is DEFAULT_ALIAS_PROVIDERS
            and not picker.response_transformers
        ):
            try:
                done = lean(serializer, value, shape)
            except _NotLean:
                pass
            else:
                serializer._default_serialize(serialized, done, shape, key)
                return
        original_structure(serializer, serialized, value, shape, key)

    XFormedAttributePicker.get_possible_keys = possible_keys  # type: ignore[method-assign,assignment]
    XFormedAttributePicker.__call__ = pick  # type: ignore[method-assign,assignment]
    BaseJSONSerializer._serialize_type_structure = serialize_type_structure  # type: ignore[method-assign,assignment]


def adjust_moto() -> None:
    """Apply every adjustment above to moto's classes (once per process)."""
    global _patched
    with _patch_lock:
        if _patched:
            return
        _store_not_execute()
        _stream_keys_carry_bytes()
        _import_decodes_json()
        _segments_hash_binary_keys()
        _list_imports()
        _bucket_policies_as_aws()
        _conditional_writes_are_atomic()
        _responses_at_service_speed()
        _patched = True


# --------------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------------


HANDSHAKE_TIMEOUT_S = 10.0  # a connection that does not complete its TLS handshake by then is dropped


class _Server:
    """moto's WSGI app (with :class:`_RecordTransport` around it) served by werkzeug's threaded server,
    as moto's ThreadedMotoServer serves it, over TLS when given a context.

    The listening socket is wrapped without a handshake on accept; each connection's handshake runs in
    its own request thread (werkzeug would run it in the accept loop, where one silent client stalls
    every other)."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext | None) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import ThreadedWSGIServer

        class Handler(MotoRequestHandler):
            def handle(self) -> None:
                conn = self.connection
                # werkzeug writes a response's headers and body separately; over TLS, Nagle's algorithm
                # held the second record until the client's delayed ACK or the close after werkzeug's
                # 10 ms drain (11-40 ms per request; the fast suite took 27% longer). Sent as written here.
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if isinstance(conn, ssl.SSLSocket):
                    try:
                        conn.settimeout(HANDSHAKE_TIMEOUT_S)
                        conn.do_handshake()
                        conn.settimeout(self.timeout)
                    except (ssl.SSLError, OSError):  # not TLS, an untrusted CA, or gone: drop it
                        self.close_connection = True
                        return
                super().handle()

        app = _RecordTransport(DomainDispatcherApplication(create_backend_app))
        self._server = ThreadedWSGIServer(host, port, app, Handler)
        if context is not None:
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            self._server.ssl_context = context  # werkzeug's environ says wsgi.url_scheme "https"
        self._thread = threading.Thread(target=self._server.serve_forever, name="emulator-server", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def get_host_and_port(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        self._server.shutdown()  # serve_forever closes the listening socket as it returns
        self._thread.join()


@dataclass
class Emulator:
    server: Any
    endpoint: str
    runtime: LambdaRuntime | None = None
    tls: EmulatorTLS | None = field(default=None, repr=False)

    @property
    def ca_bundle(self) -> Path | None:
        """The PEM file of the CA that signed the emulator's certificate (None when it serves plain
        HTTP): what ``AWS_CA_BUNDLE`` names for every client of the emulator."""
        return None if self.tls is None else self.tls.ca_bundle

    def client_environment(self) -> dict[str, str]:
        """The variables a client of this emulator needs besides its credentials: ``AWS_CA_BUNDLE``."""
        return {} if self.ca_bundle is None else {"AWS_CA_BUNDLE": str(self.ca_bundle)}

    def stop(self) -> None:
        """Stop the Lambda runtime (its pollers and function processes), then the server; remove the
        CA bundle."""
        _running.pop(self.endpoint, None)
        try:
            if self.runtime is not None:
                self.runtime.stop()
            self.server.stop()
        finally:
            if self.tls is not None:
                self.tls.remove()

    def lambda_stats(self) -> dict[str, MappingStats]:
        """Counters per event source mapping UUID (a snapshot); empty when Lambda does not run."""
        return {} if self.runtime is None else self.runtime.stats()

    def wait_for_lambda(self, timeout_s: float, mappings: Collection[str] | None = None) -> bool:
        """Wait until every enabled mapping (of ``mappings``, UUIDs, if given) has read its stream to the
        end with nothing left to deliver or retry (True), or ``timeout_s`` passed (False). True at once
        when Lambda does not run."""
        return True if self.runtime is None else self.runtime.wait_caught_up(timeout_s, mappings)


def find_emulator(endpoint: str) -> Emulator | None:
    """The running emulator of this process serving ``endpoint``, if any."""
    return _running.get(endpoint)


def start_emulator(host: str = "127.0.0.1", port: int = 0, *, run_lambda: bool = True, tls: bool = True) -> Emulator:
    """Start moto server on a free loopback port (port 0) in this process, over HTTPS with a CA made
    for it (``tls``; plain HTTP otherwise), and (``run_lambda``) the Lambda runtime that executes its
    enabled DynamoDB-stream event source mappings. Clients trust the emulator through
    ``Emulator.ca_bundle`` (``AWS_CA_BUNDLE``)."""
    try:
        import moto.moto_server.werkzeug_app  # noqa: F401
    except ImportError:
        from ..errors import MigratorError

        raise MigratorError("the emulator needs moto[server]; run `make install`") from None
    adjust_moto()
    for name in ("werkzeug", "moto"):
        logging.getLogger(name).setLevel(logging.ERROR)
    material: EmulatorTLS | None = None
    if tls:
        from .tls import make_tls

        material = make_tls()
    try:
        server = _Server(host, port, None if material is None else material.context)
        server.start()
    except BaseException:
        if material is not None:
            material.remove()
        raise
    bound_host, bound_port = server.get_host_and_port()
    scheme = "http" if material is None else "https"
    emulator = Emulator(server, f"{scheme}://{bound_host}:{bound_port}", tls=material)
    if run_lambda:
        from .lambda_runtime import LambdaRuntime

        emulator.runtime = LambdaRuntime(emulator.endpoint, ca_bundle=emulator.ca_bundle)
        emulator.runtime.start()
    _running[emulator.endpoint] = emulator
    return emulator
