"""The core's own request checks: what lets the Lambda's client skip botocore's parameter validation."""

from __future__ import annotations

import base64
import json
from typing import Any

import botocore.session
import pytest
from botocore.validate import validate_parameters
from hypothesis import given, settings
from hypothesis import strategies as st

from migrator.replicator import core

from .conftest import stream_record

_client = botocore.session.get_session().create_client(
    "dynamodb", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
)
_model = _client.meta.service_model.operation_model("BatchWriteItem")

text = st.text(max_size=30)
scalar = st.one_of(
    text.map(lambda s: {"S": s}),
    st.integers().map(lambda i: {"N": str(i)}),
    st.binary(max_size=40).map(lambda b: {"B": b}),
    st.binary(max_size=40).map(lambda b: {"B": base64.b64encode(b).decode()}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.lists(text, min_size=1, max_size=5, unique=True).map(lambda v: {"SS": v}),
    st.lists(st.binary(max_size=10), min_size=1, max_size=4, unique=True).map(lambda v: {"BS": v}),
)
value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda v: {"L": v}),
        st.dictionaries(text, inner, max_size=4).map(lambda v: {"M": v}),
    ),
    max_leaves=20,
)
item = st.dictionaries(text, value, min_size=1, max_size=6)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.lists(item, min_size=1, max_size=5))
def test_size_bound_never_undercounts_the_real_body_and_botocore_accepts_the_request(
    items: list[dict[str, Any]],
) -> None:
    writes = [core._wire_map(i, "item") for i in items]
    requests = [{"PutRequest": {"Item": w}} for w, _ in writes]
    bound = sum(core._PUT_ENVELOPE + n for _, n in writes)
    body = _client._serializer.serialize_to_request({"RequestItems": {"t": requests}}, _model)["body"]
    envelope = len(json.dumps({"RequestItems": {"t": []}}))
    assert len(body) <= bound + envelope
    validate_parameters({"RequestItems": {"tab": requests}}, _model.input_shape)


@pytest.mark.parametrize(
    "bad",
    [{"N": 5}, {"S": None}, {"SS": "abc"}, {"X": "1"}, {"S": "a", "N": "1"}, {"M": [1]}, {"BOOL": "true"}],
)
def test_a_wrongly_typed_value_is_refused_before_any_write(bad: dict[str, Any]) -> None:
    keys = {"pk": {"S": "a"}}
    record = stream_record("INSERT", keys, 1, new={**keys, "v": bad})
    with pytest.raises(core.RecordError):
        core.plan_writes([record])
