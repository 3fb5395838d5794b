"""Table verification and repair: canonical forms, difference kinds, re-check under lag, repair."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrator.aws.codec import canonical_key, canonical_number, decode_key, item_digest, key_from_json, key_to_json
from migrator.aws.dynamodb import RetryPolicy, table_key_names, write_batch
from migrator.aws.session import AccountSession
from migrator.dataplane.verify import VerifyResult, repair, verify_and_repair, verify_tables
from migrator.dataplane.verify.engine import read_items

from .conftest import make_table

KEYS = ["pk", "sk"]


# --------------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------------


@dataclass
class Pair:
    """A source table and a target table of the same name, one in each account."""

    src: Any
    tgt: Any
    name: str

    def verify(self, **options: Any) -> VerifyResult:
        options.setdefault("recheck_delay", 0.05)
        return verify_tables(self.src, self.name, self.tgt, self.name, key_names=KEYS, **options)


@pytest.fixture
def pair(source: AccountSession, target: AccountSession, unique: str) -> Pair:
    name = f"verify-{unique}"
    make_table(source, name, stream=None, pitr=False)
    make_table(target, name, stream=None, pitr=False)
    return Pair(source.client("dynamodb"), target.client("dynamodb"), name)


def key(pk: str, sk: str = "0") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def item(pk: str, sk: str = "0", **attributes: dict[str, Any]) -> dict[str, Any]:
    return {**key(pk, sk), **attributes}


def put(client: Any, table: str, *items: dict[str, Any]) -> None:
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]
        assert not write_batch(client, table, batch, key_names=("pk", "sk")).failed


def put_both(p: Pair, *items: dict[str, Any]) -> None:
    put(p.src, p.name, *items)
    put(p.tgt, p.name, *items)


def get(client: Any, table: str, k: dict[str, Any]) -> dict[str, Any] | None:
    found: dict[str, Any] | None = client.get_item(TableName=table, Key=k, ConsistentRead=True).get("Item")
    return found


# --------------------------------------------------------------------------------------------------
# Canonical forms (no emulator)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("1", "1"),
        ("1.0", "1"),
        ("1.00", "1"),
        ("1E0", "1"),
        ("10E-1", "1"),
        ("+1", "1"),
        ("0.1E1", "1"),
        ("-0", "0"),
        ("0.000", "0"),
        ("-0E5", "0"),
        ("100", "100"),
        ("1E2", "100"),
        ("123.4500", "123.45"),
        ("-1.5e-3", "-0.0015"),
        ("0012", "12"),
        ("1E-130", "0." + "0" * 129 + "1"),
        # 38 significant digits survive exactly (a float or a 28-digit context would round them)
        ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
        ("1.2345678901234567890123456789012345678", "1.2345678901234567890123456789012345678"),
        ("-9.9999999999999999999999999999999999999E+125", "-99999999999999999999999999999999999999" + "0" * 88),
    ],
)
def test_canonical_number_is_exact_plain_notation(text: str, canonical: str) -> None:
    assert canonical_number(text) == canonical
    assert Decimal(canonical) == Decimal(text)


def test_canonical_number_tells_apart_numbers_differing_in_the_38th_digit() -> None:
    assert canonical_number("1.2345678901234567890123456789012345678") != canonical_number(
        "1.2345678901234567890123456789012345679"
    )


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "abc", ""])
def test_canonical_number_rejects_what_is_not_a_dynamodb_number(bad: str) -> None:
    with pytest.raises(ValueError, match="not a DynamoDB number"):
        canonical_number(bad)


TYPE_CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    ("1 vs 1.0", {"N": "1"}, {"N": "1.0"}, True),
    ("1 vs 1E0", {"N": "1"}, {"N": "1E0"}, True),
    ("-0 vs 0", {"N": "-0"}, {"N": "0"}, True),
    ("1 vs 2", {"N": "1"}, {"N": "2"}, False),
    ("'1' vs 1", {"S": "1"}, {"N": "1"}, False),
    ("'1' vs '1.0'", {"S": "1"}, {"S": "1.0"}, False),
    ("B vs S", {"B": b"1"}, {"S": "1"}, False),
    ("B bytes", {"B": b"\x00\xff"}, {"B": b"\x00\xff"}, True),
    ("B differs", {"B": b"\x00\xff"}, {"B": b"\x00\xfe"}, False),
    ("SS order", {"SS": ["a", "b", "c"]}, {"SS": ["c", "a", "b"]}, True),
    ("SS vs L", {"SS": ["a", "b"]}, {"L": [{"S": "a"}, {"S": "b"}]}, False),
    ("NS values", {"NS": ["1", "2.50"]}, {"NS": ["2.5", "1.0"]}, True),
    ("NS vs SS", {"NS": ["1"]}, {"SS": ["1"]}, False),
    ("BS order", {"BS": [b"x", b"y"]}, {"BS": [b"y", b"x"]}, True),
    ("L order", {"L": [{"S": "a"}, {"S": "b"}]}, {"L": [{"S": "b"}, {"S": "a"}]}, False),
    ("L numbers", {"L": [{"N": "1.0"}]}, {"L": [{"N": "1"}]}, True),
    ("BOOL vs N", {"BOOL": True}, {"N": "1"}, False),
    ("BOOL", {"BOOL": False}, {"BOOL": True}, False),
    ("NULL vs BOOL", {"NULL": True}, {"BOOL": False}, False),
    (
        "nested M order",
        {"M": {"a": {"N": "1"}, "b": {"M": {"x": {"SS": ["p", "q"]}, "y": {"NULL": True}}}}},
        {"M": {"b": {"M": {"y": {"NULL": True}, "x": {"SS": ["q", "p"]}}}, "a": {"N": "1.00"}}},
        True,
    ),
    (
        "nested M value",
        {"M": {"a": {"M": {"x": {"S": "1"}}}}},
        {"M": {"a": {"M": {"x": {"N": "1"}}}}},
        False,
    ),
    ("M extra key", {"M": {"a": {"S": "x"}}}, {"M": {"a": {"S": "x"}, "b": {"S": "x"}}}, False),
    ("M vs L", {"M": {}}, {"L": []}, False),
    ("S concatenation", {"L": [{"S": "ab"}, {"S": "c"}]}, {"L": [{"S": "a"}, {"S": "bc"}]}, False),
]


@pytest.mark.parametrize(("a", "b", "equal"), [c[1:] for c in TYPE_CASES], ids=[c[0] for c in TYPE_CASES])
def test_item_digest_compares_like_dynamodb(a: dict[str, Any], b: dict[str, Any], equal: bool) -> None:
    assert (item_digest({"pk": {"S": "k"}, "v": a}) == item_digest({"pk": {"S": "k"}, "v": b})) is equal


def test_item_digest_ignores_attribute_order_and_sees_missing_attributes() -> None:
    one = {"pk": {"S": "k"}, "a": {"N": "1"}, "b": {"S": "x"}}
    assert item_digest(one) == item_digest(dict(reversed(list(one.items()))))
    assert item_digest(one) != item_digest({"pk": {"S": "k"}, "a": {"N": "1"}})
    assert len(item_digest(one)) == 16


# A reference model of DynamoDB equality, written independently of the encoder.
def reference(value: dict[str, Any]) -> Any:
    ((tag, inner),) = value.items()
    if tag == "N":
        return ("N", Decimal(inner))
    if tag in ("S", "B", "BOOL"):
        return (tag, inner)
    if tag == "NULL":
        return ("NULL",)
    if tag == "NS":
        return ("NS", frozenset(Decimal(x) for x in inner))
    if tag in ("SS", "BS"):
        return (tag, frozenset(inner))
    if tag == "L":
        return ("L", tuple(reference(x) for x in inner))
    return ("M", frozenset((k, reference(v)) for k, v in inner.items()))


NUMBER_TEXTS = ["0", "-0", "0.0", "1", "1.0", "1E0", "10E-1", "-1", "2", "0.5", "5E-1", "1E38", "1" + "0" * 38]
scalars = st.one_of(
    st.sampled_from(NUMBER_TEXTS).map(lambda n: {"N": n}),
    st.sampled_from(["", "1", "a", "ab"]).map(lambda s: {"S": s}),
    st.sampled_from([b"", b"1", b"a"]).map(lambda b: {"B": b}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.lists(st.sampled_from(["1", "a", "b"]), min_size=1, max_size=3, unique=True).map(lambda s: {"SS": s}),
    st.lists(st.sampled_from(["1", "2", "3.5"]), min_size=1, max_size=3, unique=True).map(lambda s: {"NS": s}),
    st.lists(st.sampled_from([b"1", b"a"]), min_size=1, max_size=2, unique=True).map(lambda s: {"BS": s}),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda items: {"L": items}),
        st.dictionaries(st.sampled_from(["a", "b", "c"]), children, max_size=3).map(lambda m: {"M": m}),
    ),
    max_leaves=6,
)
items = st.dictionaries(st.sampled_from(["x", "y", "z"]), values, max_size=3)


def reordered(value: dict[str, Any]) -> dict[str, Any]:
    """The same value with every map's attribute order and every set's element order reversed."""
    ((tag, inner),) = value.items()
    if tag in ("SS", "NS", "BS"):
        return {tag: list(reversed(inner))}
    if tag == "L":
        return {"L": [reordered(x) for x in inner]}
    if tag == "M":
        return {"M": {k: reordered(inner[k]) for k in reversed(list(inner))}}
    return value


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(items, items)
def test_item_digest_is_equal_exactly_when_dynamodb_equality_holds(a: dict[str, Any], b: dict[str, Any]) -> None:
    same = reference({"M": a}) == reference({"M": b})
    assert (item_digest(a) == item_digest(b)) is same


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(items)
def test_item_digest_ignores_map_and_set_order(a: dict[str, Any]) -> None:
    assert item_digest(a) == item_digest(reordered({"M": a})["M"])


def test_canonical_key_round_trips_and_normalises_numbers() -> None:
    names = ["bk", "nk", "sk"]
    raw: dict[str, dict[str, Any]] = {
        "bk": {"B": b"\x00\xff"},
        "nk": {"N": "1.50"},
        "sk": {"S": "é"},
        "other": {"S": "ignored"},
    }
    encoded, differs = canonical_key(raw, names)
    assert differs  # "1.50" is not the canonical "1.5"
    assert decode_key(encoded, names) == {"bk": {"B": b"\x00\xff"}, "nk": {"N": "1.5"}, "sk": {"S": "é"}}
    assert canonical_key({"bk": {"B": b"\x00\xff"}, "nk": {"N": "15E-1"}, "sk": {"S": "é"}}, names)[0] == encoded
    assert canonical_key({"bk": {"B": b"\x00\xff"}, "nk": {"N": "1.5"}, "sk": {"S": "é"}}, names) == (
        encoded,
        False,
    )
    # the string "1" and the number 1 are different keys
    assert canonical_key({"k": {"S": "1"}}, ["k"])[0] != canonical_key({"k": {"N": "1"}}, ["k"])[0]


def test_keys_convert_to_plain_json_and_back() -> None:
    k: dict[str, dict[str, Any]] = {"bk": {"B": b"\x00\xff"}, "nk": {"N": "7"}}
    as_json = key_to_json(k)
    assert as_json == {"bk": {"B": base64.b64encode(b"\x00\xff").decode()}, "nk": {"N": "7"}}
    assert json.loads(json.dumps(as_json)) == as_json
    assert key_from_json(as_json) == k


def test_a_missing_key_attribute_is_reported_as_a_wrong_key_name() -> None:
    with pytest.raises(ValueError, match="no key attribute 'id'"):
        canonical_key({"pk": {"S": "a"}}, ["id"])


# --------------------------------------------------------------------------------------------------
# Verify against the emulator
# --------------------------------------------------------------------------------------------------


def test_equal_tables_are_clean_across_segments_and_pages(pair: Pair) -> None:
    put_both(pair, *(item(f"p{i % 17}", f"s{i}", v={"N": str(i)}) for i in range(120)))
    seen: list[tuple[str, int]] = []
    result = pair.verify(segments=4, workers=3, page_size=7, progress=lambda s, n: seen.append((s, n)))
    assert result.clean
    assert (result.source_items, result.target_items) == (120, 120)
    assert result.to_json() == {
        "source_items": 120,
        "target_items": 120,
        "missing": 0,
        "different": 0,
        "extraneous": 0,
        "examples": {"missing": [], "different": [], "extraneous": []},
    }
    assert max(n for s, n in seen if s == "source") == 120
    assert max(n for s, n in seen if s == "target") == 120
    assert result.differing_keys == []


def test_table_key_names_lists_the_hash_key_first(pair: Pair) -> None:
    assert table_key_names(pair.src, pair.name) == ["pk", "sk"]


def test_missing_item_is_counted_with_its_key(pair: Pair) -> None:
    put_both(pair, item("same"))
    put(pair.src, pair.name, item("gone", v={"S": "x"}))
    result = pair.verify()
    assert (result.missing, result.different, result.extraneous) == (1, 0, 0)
    assert result.missing_examples == [key("gone")]
    assert (result.source_items, result.target_items) == (2, 1)
    assert not result.clean


def test_extraneous_item_is_counted_with_its_key(pair: Pair) -> None:
    put_both(pair, item("same"))
    put(pair.tgt, pair.name, item("extra"))
    result = pair.verify()
    assert (result.missing, result.different, result.extraneous) == (0, 0, 1)
    assert result.extraneous_examples == [key("extra")]


def test_different_item_is_counted_with_its_key(pair: Pair) -> None:
    put_both(pair, item("same", v={"N": "1"}))
    put(pair.src, pair.name, item("changed", v={"N": "1"}))
    put(pair.tgt, pair.name, item("changed", v={"N": "2"}))
    result = pair.verify()
    assert (result.missing, result.different, result.extraneous) == (0, 1, 0)
    assert result.different_examples == [key("changed")]


def test_an_attribute_missing_on_one_side_is_a_difference(pair: Pair) -> None:
    put(pair.src, pair.name, item("a", v={"N": "1"}, extra={"S": "x"}))
    put(pair.tgt, pair.name, item("a", v={"N": "1"}))
    assert pair.verify().different == 1


def test_type_exact_comparison_through_the_emulator(pair: Pair) -> None:
    source_items = [item(name, v=a) for name, a, _, _ in TYPE_CASES]
    target_items = [item(name, v=b) for name, _, b, _ in TYPE_CASES]
    put(pair.src, pair.name, *source_items)
    put(pair.tgt, pair.name, *target_items)
    result = pair.verify(examples=len(TYPE_CASES))
    reported = {k["pk"]["S"] for k in result.different_examples}
    expected = {name for name, _, _, equal in TYPE_CASES if not equal}
    assert reported == expected
    assert result.different == len(expected)
    assert (result.missing, result.extraneous) == (0, 0)


def test_examples_are_capped_but_every_differing_key_is_kept(pair: Pair) -> None:
    put(pair.src, pair.name, *(item(f"m{i}") for i in range(7)))
    put(pair.tgt, pair.name, *(item(f"x{i}") for i in range(3)))
    result = pair.verify(examples=2)
    assert (result.missing, result.extraneous) == (7, 3)
    assert result.missing_examples == [key("m0"), key("m1")]
    assert result.extraneous_examples == [key("x0"), key("x1")]
    assert len(result.differing_keys) == 10
    document = result.to_json()
    assert set(document) == {"source_items", "target_items", "missing", "different", "extraneous", "examples"}
    assert document["examples"]["missing"] == [key("m0"), key("m1")]
    assert json.loads(json.dumps(document)) == document


def test_number_and_binary_keys_are_compared_by_value_and_reported_as_json(
    source: AccountSession, target: AccountSession, unique: str
) -> None:
    # A number hash key and a binary range key (a binary hash key: the next test).
    name = f"verify-nb-{unique}"
    for session in (source, target):
        session.client("dynamodb").create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "nk", "KeyType": "HASH"}, {"AttributeName": "bk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "nk", "AttributeType": "N"},
                {"AttributeName": "bk", "AttributeType": "B"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    src, tgt = source.client("dynamodb"), target.client("dynamodb")
    src.put_item(TableName=name, Item={"nk": {"N": "1.50"}, "bk": {"B": b"\x00\x01"}, "v": {"S": "a"}})
    tgt.put_item(TableName=name, Item={"nk": {"N": "1.5"}, "bk": {"B": b"\x00\x01"}, "v": {"S": "a"}})
    src.put_item(TableName=name, Item={"nk": {"N": "2"}, "bk": {"B": b"\xff"}, "v": {"S": "a"}})
    src.put_item(TableName=name, Item={"nk": {"N": "3.0"}, "bk": {"B": b"\x01"}, "v": {"S": "a"}})
    tgt.put_item(TableName=name, Item={"nk": {"N": "3"}, "bk": {"B": b"\x01"}, "v": {"S": "b"}})
    result = verify_tables(src, name, tgt, name, key_names=["nk", "bk"], recheck_delay=0.05)
    assert (result.missing, result.different, result.extraneous) == (1, 1, 0)
    assert result.missing_examples == [{"nk": {"N": "2"}, "bk": {"B": base64.b64encode(b"\xff").decode()}}]
    # the example keeps the raw key as scanned from the source
    assert result.different_examples == [{"nk": {"N": "3.0"}, "bk": {"B": base64.b64encode(b"\x01").decode()}}]
    assert {"nk": {"N": "2"}, "bk": {"B": b"\xff"}} in result.differing_keys
    repair(src, name, tgt, name, result.differing_keys)
    assert verify_tables(src, name, tgt, name, key_names=["nk", "bk"], recheck_delay=0.05).clean


def test_a_binary_partition_key_verifies_across_parallel_segments_and_repairs(
    source: AccountSession, target: AccountSession, unique: str
) -> None:
    name = f"verify-bh-{unique}"
    for session in (source, target):
        session.client("dynamodb").create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "bk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "bk", "AttributeType": "B"}],
            BillingMode="PAY_PER_REQUEST",
        )
    src, tgt = source.client("dynamodb"), target.client("dynamodb")
    for i in range(40):
        item = {"bk": {"B": bytes([i, 255 - i, 0])}, "v": {"N": str(i)}}
        src.put_item(TableName=name, Item=item)
        if i != 7:
            tgt.put_item(TableName=name, Item=item)
    result = verify_tables(src, name, tgt, name, key_names=["bk"], segments=4, workers=4, recheck_delay=0.01)
    assert (result.source_items, result.target_items) == (40, 39)  # every item in exactly one segment
    assert (result.missing, result.different, result.extraneous) == (1, 0, 0)
    assert result.missing_examples == [{"bk": {"B": base64.b64encode(bytes([7, 248, 0])).decode()}}]
    repair(src, name, tgt, name, result.differing_keys)
    assert verify_tables(src, name, tgt, name, key_names=["bk"], segments=4, workers=4, recheck_delay=0.01).clean


def test_wrong_key_names_fail_loudly(pair: Pair) -> None:
    put_both(pair, item("a"))
    with pytest.raises(ValueError, match="check key_names"):
        verify_tables(pair.src, pair.name, pair.tgt, pair.name, key_names=["id"])


# --------------------------------------------------------------------------------------------------
# Re-check under replication lag
# --------------------------------------------------------------------------------------------------


def lagging_replicator(p: Pair, at_round: int | None) -> tuple[Callable[[str, int], None], threading.Event]:
    """A progress callback that lets the target catch up just before re-check round ``at_round`` (1-based),
    or never (``None``): the lag converges at a known point of the verify, whatever the machine's speed.

    The source holds the truth; the target lacks ``new``, has an old ``upd`` and still has ``del``.
    """
    put(p.src, p.name, item("new", v={"N": "1"}), item("upd", v={"N": "2"}))
    put(p.tgt, p.name, item("upd", v={"N": "1"}), item("del", v={"N": "1"}))
    caught_up = threading.Event()
    rounds = 0

    def progress(stage: str, count: int) -> None:
        nonlocal rounds
        if stage != "recheck":
            return
        rounds += 1  # reported before each round (and once more at the end)
        if rounds == at_round and not caught_up.is_set():
            put(p.tgt, p.name, item("new", v={"N": "1"}), item("upd", v={"N": "2"}))
            p.tgt.delete_item(TableName=p.name, Key=key("del"))
            caught_up.set()

    return progress, caught_up


def test_recheck_ignores_differences_that_converge_after_the_scan(pair: Pair) -> None:
    put_both(pair, *(item(f"ok{i}") for i in range(10)))
    progress, caught_up = lagging_replicator(pair, at_round=2)
    recheck_counts: list[int] = []

    def record(stage: str, count: int) -> None:
        if stage == "recheck":
            recheck_counts.append(count)
        progress(stage, count)

    result = pair.verify(recheck_rounds=3, recheck_delay=0.01, progress=record)
    assert caught_up.is_set()
    assert recheck_counts[0] == 3  # the scan did see the lag: one of each kind
    assert result.clean, result.to_json()
    assert (result.source_items, result.target_items) == (12, 12)


def test_without_recheck_a_lagging_target_is_reported(pair: Pair) -> None:
    progress, _ = lagging_replicator(pair, at_round=1)
    result = pair.verify(recheck_rounds=0, progress=progress)
    assert (result.missing, result.different, result.extraneous) == (1, 1, 1)


def test_recheck_that_ends_before_the_target_catches_up_reports_the_lag(pair: Pair) -> None:
    progress, caught_up = lagging_replicator(pair, at_round=None)
    result = pair.verify(recheck_rounds=2, recheck_delay=0.01, progress=progress)
    assert not caught_up.is_set()
    assert (result.missing, result.different, result.extraneous) == (1, 1, 1)


def test_recheck_keeps_a_real_difference_while_the_lag_converges(pair: Pair) -> None:
    progress, _ = lagging_replicator(pair, at_round=2)
    put(pair.src, pair.name, item("real", v={"S": "source"}))
    put(pair.tgt, pair.name, item("real", v={"S": "target"}))
    result = pair.verify(recheck_rounds=3, recheck_delay=0.01, progress=progress)
    assert (result.missing, result.different, result.extraneous) == (0, 1, 0)
    assert result.different_examples == [key("real")]
    assert result.differing_keys == [key("real")]


def test_recheck_classifies_by_the_last_reading(pair: Pair) -> None:
    # Scanned as missing; by the re-check the target has a wrong image: it is now "different".
    put(pair.src, pair.name, item("a", v={"N": "1"}))

    def progress(stage: str, count: int) -> None:
        if stage == "recheck" and get(pair.tgt, pair.name, key("a")) is None:
            put(pair.tgt, pair.name, item("a", v={"N": "9"}))

    result = pair.verify(recheck_rounds=1, progress=progress)
    assert (result.missing, result.different, result.extraneous) == (0, 1, 0)


class FlakyBatchGet:
    """A DynamoDB client whose BatchGetItem leaves half the keys unprocessed the first few times."""

    def __init__(self, client: Any, failures: int = 2, *, stuck: bool = False) -> None:
        self._client = client
        self.failures = failures
        self.stuck = stuck
        self.calls = 0
        self.consistent: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        ((table, request),) = RequestItems.items()
        self.consistent.append(request.get("ConsistentRead", False))
        keys = request["Keys"]
        if self.stuck:
            return {"Responses": {table: []}, "UnprocessedKeys": RequestItems}
        if self.failures and len(keys) > 1:
            self.failures -= 1
            half = len(keys) // 2
            response = self._client.batch_get_item(RequestItems={table: {**request, "Keys": keys[:half]}})
            response["UnprocessedKeys"] = {table: {**request, "Keys": keys[half:]}}
            return dict(response)
        return dict(self._client.batch_get_item(RequestItems=RequestItems))


def test_recheck_retries_unprocessed_keys_with_consistent_reads(pair: Pair) -> None:
    put(pair.src, pair.name, *(item(f"m{i}", v={"N": str(i)}) for i in range(6)))
    put(pair.tgt, pair.name, *(item(f"m{i}", v={"N": str(i)}) for i in range(6)))
    put(pair.src, pair.name, *(item(f"m{i}", v={"N": str(i + 100)}) for i in range(6)))
    # Had the re-check dropped the unprocessed keys, they would read as absent: "missing", not "different".
    flaky = FlakyBatchGet(pair.tgt)
    result = verify_tables(pair.src, pair.name, flaky, pair.name, key_names=KEYS, recheck_rounds=1)
    assert (result.missing, result.different) == (0, 6)
    assert flaky.calls >= 3
    assert all(flaky.consistent)


def test_batch_get_gives_up_loudly_when_keys_stay_unprocessed(pair: Pair) -> None:
    put(pair.tgt, pair.name, item("a"), item("b"))
    flaky = FlakyBatchGet(pair.tgt, stuck=True)
    with pytest.raises(RuntimeError, match="unprocessed"):
        read_items(flaky, pair.name, [key("a"), key("b")], retry=RetryPolicy(max_attempts=5, sleep=lambda s: None))


# --------------------------------------------------------------------------------------------------
# Repair
# --------------------------------------------------------------------------------------------------


def test_repair_fixes_every_kind_and_a_second_verify_is_clean(pair: Pair) -> None:
    put_both(pair, *(item(f"ok{i}") for i in range(5)))
    put(pair.src, pair.name, *(item(f"miss{i}", v={"SS": ["a", "b"]}) for i in range(120)))
    put(pair.src, pair.name, item("diff", v={"N": "1"}, b={"B": b"\x00"}))
    put(pair.tgt, pair.name, item("diff", v={"N": "2"}))
    put(pair.tgt, pair.name, item("extra"))
    first = pair.verify(examples=1)
    assert (first.missing, first.different, first.extraneous) == (120, 1, 1)
    assert len(first.differing_keys) == 122

    repaired = repair(pair.src, pair.name, pair.tgt, pair.name, first.differing_keys)
    assert (repaired.written, repaired.deleted) == (121, 1)
    assert repaired.to_json() == {"written": 121, "deleted": 1}

    second = pair.verify()
    assert second.clean, second.to_json()
    assert get(pair.tgt, pair.name, key("diff")) == item("diff", v={"N": "1"}, b={"B": b"\x00"})
    assert get(pair.tgt, pair.name, key("extra")) is None


def test_repair_of_a_key_deleted_from_the_source_deletes_it_from_the_target(pair: Pair) -> None:
    put(pair.src, pair.name, item("k", v={"N": "1"}))
    put(pair.tgt, pair.name, item("k", v={"N": "0"}))
    found = pair.verify()
    assert found.different == 1
    pair.src.delete_item(TableName=pair.name, Key=key("k"))  # the source moves on before the repair
    repaired = repair(pair.src, pair.name, pair.tgt, pair.name, found.differing_keys)
    assert (repaired.written, repaired.deleted) == (0, 1)
    assert get(pair.tgt, pair.name, key("k")) is None


def test_repair_writes_the_current_source_image_never_the_one_verified(pair: Pair) -> None:
    put(pair.src, pair.name, item("k", v={"N": "1"}))
    found = pair.verify()
    assert found.missing == 1
    put(pair.src, pair.name, item("k", v={"N": "2"}))  # updated after the verify
    repair(pair.src, pair.name, pair.tgt, pair.name, found.differing_keys)
    assert get(pair.tgt, pair.name, key("k")) == item("k", v={"N": "2"})


def test_repair_accepts_json_keys_and_repairs_duplicates_once(pair: Pair) -> None:
    put(pair.src, pair.name, item("k", v={"N": "1"}))
    found = pair.verify()
    json_keys = [key_from_json(k) for k in found.to_json()["examples"]["missing"]]
    repaired = repair(pair.src, pair.name, pair.tgt, pair.name, [*json_keys, *json_keys, key("k")])
    assert (repaired.written, repaired.deleted) == (1, 0)
    assert pair.verify().clean


class FlakyBatchWrite:
    """A DynamoDB client whose BatchWriteItem leaves the last request unprocessed the first time."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        ((table, requests),) = RequestItems.items()
        if self.calls == 1 and len(requests) > 1:
            self._client.batch_write_item(RequestItems={table: requests[:-1]})
            return {"UnprocessedItems": {table: requests[-1:]}}
        return dict(self._client.batch_write_item(RequestItems=RequestItems))


def test_repair_retries_unprocessed_items(pair: Pair) -> None:
    put(pair.src, pair.name, *(item(f"m{i}") for i in range(3)))
    flaky = FlakyBatchWrite(pair.tgt)
    repaired = repair(pair.src, pair.name, flaky, pair.name, [key(f"m{i}") for i in range(3)])
    assert repaired.written == 3
    assert flaky.calls == 2
    assert pair.verify().clean


def test_verify_and_repair_ends_clean(pair: Pair) -> None:
    put(pair.src, pair.name, item("a"), item("b", v={"S": "x"}))
    put(pair.tgt, pair.name, item("b", v={"S": "y"}), item("c"))
    outcome = verify_and_repair(pair.src, pair.name, pair.tgt, pair.name, key_names=KEYS, recheck_delay=0.05)
    assert (outcome.before.missing, outcome.before.different, outcome.before.extraneous) == (1, 1, 1)
    assert outcome.repair is not None
    assert (outcome.repair.written, outcome.repair.deleted) == (2, 1)
    assert outcome.after is not None
    assert outcome.after.clean
    assert outcome.clean


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Verify's worker pools end with it: no thread it started outlives the test."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 30  # a generous wait for pools shutting down, not a speed budget
    while (leaked := [t for t in threading.enumerate() if t not in before and t.is_alive()]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert not leaked, f"threads still running after the test: {sorted(t.name for t in leaked)}"
