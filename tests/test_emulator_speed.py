"""The emulator's response adjustment (``_responses_at_service_speed`` in migrator/dev/emulator.py) changes how
fast DynamoDB and DynamoDB Streams responses are built, never what they say: every body here is compared, byte
for byte, with the one moto's own serializer writes for the same result."""

from __future__ import annotations

import random
from typing import Any

import pytest
from moto.core.serialize import BaseJSONSerializer, XFormedAttributePicker, get_serializer_class
from moto.core.utils import get_service_model

from migrator.dev.demo import TRICKY, make_item
from migrator.dev.emulator import MOTO_ORIGINALS, adjust_moto

pytestmark = pytest.mark.usefixtures("adjusted")


@pytest.fixture
def adjusted() -> None:
    adjust_moto()


def items() -> list[dict[str, Any]]:
    """Every kind of value: the demo's varied items and a few edges (binary as text, empty containers, None)."""
    rng = random.Random(3)
    found = [make_item(rng, n) for n in range(40)]
    found.append(
        {
            "pk": {"S": "edge"},
            "text_blob": {"B": "dGV4dA=="},  # a blob moto holds as text
            "empty_list": {"L": []},
            "empty_map": {"M": {}},
            "nested": {"L": [{"M": {"x": {"L": [{"NULL": True}, {"BOOL": False}, {"N": "-0.5e-3"}]}}}]},
            "sets": {"M": {"ss": {"SS": list(TRICKY)}, "bs": {"BS": [b"\x00", b"\xff\xfe"]}, "ns": {"NS": ["1E+2"]}}},
            "empty": {"S": ""},
            "none_member": {"S": "x", "N": None},
        }
    )
    return found


def record(n: int, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "eventID": f"e{n}",
        "eventName": "MODIFY",
        "eventSource": "aws:dynamodb",
        "eventVersion": "1.0",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "ApproximateCreationDateTime": 1_700_000_000.5,
            "SequenceNumber": str(n),
            "SizeBytes": 100,
            "Keys": {"pk": item["pk"]},
            "NewImage": item,
            "OldImage": item,
        },
    }


CASES = [
    ("dynamodbstreams", "GetRecords", lambda its: {"Records": [record(n, i) for n, i in enumerate(its)]}),
    ("dynamodb", "Scan", lambda its: {"Items": its, "Count": len(its), "ScannedCount": len(its)}),
    ("dynamodb", "Query", lambda its: {"Items": its, "Count": len(its), "LastEvaluatedKey": {"pk": its[0]["pk"]}}),
    ("dynamodb", "GetItem", lambda its: {"Item": its[3]}),
    ("dynamodb", "BatchGetItem", lambda its: {"Responses": {"T": its}, "UnprocessedKeys": {}}),
    ("dynamodb", "PutItem", lambda its: {"Attributes": its[5]}),
]


def body(service: str, operation: str, result: dict[str, Any]) -> str:
    """The response body moto writes for ``result``, as ``ActionResult.execute_result`` builds it."""
    model = get_service_model(service).operation_model(operation)
    serializer_cls = get_serializer_class(service, model.metadata["protocol"])
    serializer = serializer_cls(operation_model=model, value_picker=XFormedAttributePicker(response_transformers={}))
    return str(serializer.serialize(result)["body"])


def moto_body(monkeypatch: pytest.MonkeyPatch, service: str, operation: str, result: dict[str, Any]) -> str:
    with monkeypatch.context() as m:
        m.setattr(XFormedAttributePicker, "get_possible_keys", MOTO_ORIGINALS["get_possible_keys"])
        m.setattr(XFormedAttributePicker, "__call__", MOTO_ORIGINALS["pick"])
        m.setattr(BaseJSONSerializer, "_serialize_type_structure", MOTO_ORIGINALS["serialize_type_structure"])
        return body(service, operation, result)


@pytest.mark.parametrize(("service", "operation", "build"), CASES, ids=[f"{s}.{o}" for s, o, _ in CASES])
def test_responses_are_motos_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch, service: str, operation: str, build: Any
) -> None:
    result = build(items())
    adjusted = body(service, operation, result)
    assert adjusted == moto_body(monkeypatch, service, operation, build(items()))
    assert '"S": ""' in adjusted or operation in ("GetItem", "PutItem")  # the corpus reached the body


def test_the_adjustment_is_in_place() -> None:
    """The comparison above compares two different code paths: moto's functions were replaced."""
    assert XFormedAttributePicker.__call__ is not MOTO_ORIGINALS["pick"]
    assert BaseJSONSerializer._serialize_type_structure is not MOTO_ORIGINALS["serialize_type_structure"]
