"""The target table as Terraform for the application's own repository (`migrator handover`): pure rendering.

From what DynamoDB says about the table now (DescribeTable, DescribeTimeToLive, DescribeContinuousBackups,
ListTagsOfResource) to HCL text: one plain ``aws_dynamodb_table`` resource carrying the table's current
settings, with no ``import_table`` (that belonged to migrator's creation of the table), and an ``import``
block, so the application's first ``terraform plan`` shows 1 to import and nothing to add, change or
destroy. The text is what ``terraform fmt`` would write, and every string is escaped so that no value
(a tag holding quotes, ``${`` or ``%{``) can break the file or be interpolated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import MigratorError

RESOURCE_TYPE = "aws_dynamodb_table"
#: A Terraform identifier (a resource name): a letter or underscore, then letters, digits, ``_`` or ``-``.
_ADDRESS = re.compile(r"aws_dynamodb_table\.([A-Za-z_][A-Za-z0-9_-]*)")


def resource_name(address: str) -> str:
    """The resource name of an ``aws_dynamodb_table.<name>`` address; anything else is refused.

    Only a resource of the root module is accepted: the written file holds the resource block itself, and
    a block can only be declared in the module it lives in (``module.x.aws_dynamodb_table.y`` would need the
    block inside module ``x``, and an instance key such as ``[0]`` a ``count`` the file does not have).
    """
    m = _ADDRESS.fullmatch(address)
    if m is None:
        raise MigratorError(
            f"{address!r} is not an address of the form aws_dynamodb_table.<name> (a resource of the root module, "
            "name of letters, digits, _ or -, starting with a letter or _); give the address the table will have "
            "in the application's Terraform, such as aws_dynamodb_table.orders"
        )
    return m.group(1)


# HCL values ---------------------------------------------------------------------------------------------
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def hcl_string(value: str) -> str:
    """``value`` as a quoted HCL string literal, parsed back to exactly ``value``: backslash, quote and
    control characters escaped, and the template sequences ``${`` and ``%{`` written as ``$${`` and
    ``%%{`` so nothing is interpolated."""
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    text = "".join(out).replace("${", "$${").replace("%{", "%%{")
    return f'"{text}"'


@dataclass(frozen=True)
class Raw:
    """An expression written as is (a resource address), not as a string."""

    text: str


def hcl_value(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return hcl_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(hcl_value(v) for v in value) + "]"
    raise TypeError(f"no HCL rendering for {type(value).__name__}")


# A tiny HCL writer, formatted as `terraform fmt` formats ---------------------------------------------------
@dataclass
class Block:
    type: str
    labels: tuple[str, ...] = ()
    #: ("attr", name, value) | ("map", name, {key: value}) | ("block", Block) | ("blank",) | ("comment", text)
    body: list[tuple[Any, ...]] = field(default_factory=list)

    def attr(self, name: str, value: Any) -> Block:
        self.body.append(("attr", name, value))
        return self

    def blank(self) -> Block:
        if self.body and self.body[-1] != ("blank",):
            self.body.append(("blank",))
        return self

    def comment(self, text: str) -> Block:
        self.body.append(("comment", text))
        return self

    def block(self, child: Block) -> Block:
        self.body.append(("block", child))
        return self

    def string_map(self, name: str, values: Mapping[str, str]) -> Block:
        self.body.append(("map", name, dict(values)))
        return self

    def lines(self, indent: int = 0) -> list[str]:
        pad = "  " * indent
        head = " ".join([self.type, *(hcl_string(label) for label in self.labels)])
        out = [f"{pad}{head} {{"]
        body = list(self.body)
        while body and body[-1] == ("blank",):
            body.pop()
        i = 0
        while i < len(body):
            item = body[i]
            if item[0] == "attr":  # a run of one-line attributes: their `=` aligned, as fmt aligns them
                run = []
                while i < len(body) and body[i][0] == "attr":
                    run.append(body[i])
                    i += 1
                width = max(len(a[1]) for a in run)
                out += [f"{pad}  {a[1].ljust(width)} = {hcl_value(a[2])}" for a in run]
                continue
            if item[0] == "map":
                out += _map_lines(item[1], item[2], pad + "  ")
            elif item[0] == "block":
                out += item[1].lines(indent + 1)
            elif item[0] == "comment":
                out += [f"{pad}  # {line}".rstrip() for line in item[1].splitlines()]
            else:
                out.append("")
            i += 1
        out.append(f"{pad}}}")
        return out


def _map_lines(name: str, values: Mapping[str, str], pad: str) -> list[str]:
    if not values:
        return [f"{pad}{name} = {{}}"]
    keys = {k: hcl_string(k) for k in values}
    width = max(len(q) for q in keys.values())
    return [
        f"{pad}{name} = {{",
        *(f"{pad}  {keys[k].ljust(width)} = {hcl_string(values[k])}" for k in sorted(values)),
        f"{pad}}}",
    ]


# The table -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TableFacts:
    """What DynamoDB answered about the table (the four calls' answers, unchanged)."""

    table: Mapping[str, Any]  # DescribeTable["Table"]
    ttl: Mapping[str, Any]  # DescribeTimeToLive["TimeToLiveDescription"]
    backups: Mapping[str, Any]  # DescribeContinuousBackups["ContinuousBackupsDescription"]
    tags: Mapping[str, str]  # ListTagsOfResource, every page, as a map


def _key(schema: Sequence[Mapping[str, str]], kind: str) -> str | None:
    for k in schema:
        if k["KeyType"] == kind:
            return k["AttributeName"]
    return None


def _positive(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and value > 0 else None


def _on_demand(desc: Mapping[str, Any]) -> Block | None:
    """``on_demand_throughput`` only when a maximum is set (DynamoDB answers -1 or nothing otherwise)."""
    odt = desc.get("OnDemandThroughput") or {}
    reads, writes = _positive(odt.get("MaxReadRequestUnits")), _positive(odt.get("MaxWriteRequestUnits"))
    if reads is None and writes is None:
        return None
    b = Block("on_demand_throughput")
    if reads is not None:
        b.attr("max_read_request_units", reads)
    if writes is not None:
        b.attr("max_write_request_units", writes)
    return b


def _projection(b: Block, index: Mapping[str, Any]) -> None:
    proj = index.get("Projection") or {}
    b.attr("projection_type", proj.get("ProjectionType", "ALL"))
    if proj.get("NonKeyAttributes"):
        b.attr("non_key_attributes", list(proj["NonKeyAttributes"]))  # as described: a list for an LSI


def table_block(name: str, facts: TableFacts) -> Block:
    """The ``aws_dynamodb_table`` resource ``name`` with the table's current settings."""
    t = facts.table
    billing = (t.get("BillingModeSummary") or {}).get("BillingMode")
    throughput = t.get("ProvisionedThroughput") or {}
    if billing is None:  # tables created provisioned before BillingModeSummary existed may lack it
        billing = "PROVISIONED" if throughput.get("ReadCapacityUnits") else "PAY_PER_REQUEST"
    provisioned = billing == "PROVISIONED"

    r = Block("resource", (RESOURCE_TYPE, name))
    r.attr("name", t["TableName"]).attr("billing_mode", billing)
    r.attr("hash_key", _key(t["KeySchema"], "HASH"))
    range_key = _key(t["KeySchema"], "RANGE")
    if range_key:
        r.attr("range_key", range_key)
    r.attr("table_class", (t.get("TableClassSummary") or {}).get("TableClass") or "STANDARD")
    if provisioned:
        r.blank().attr("read_capacity", int(throughput.get("ReadCapacityUnits") or 0))
        r.attr("write_capacity", int(throughput.get("WriteCapacityUnits") or 0))
    r.blank().attr("deletion_protection_enabled", bool(t.get("DeletionProtectionEnabled")))
    stream = t.get("StreamSpecification") or {}
    if stream.get("StreamEnabled"):
        r.blank().attr("stream_enabled", True).attr("stream_view_type", stream["StreamViewType"])
    on_demand = _on_demand(t)
    if on_demand is not None:
        r.blank().block(on_demand)

    for a in sorted(t["AttributeDefinitions"], key=lambda a: a["AttributeName"]):
        r.blank().block(Block("attribute").attr("name", a["AttributeName"]).attr("type", a["AttributeType"]))

    for g in sorted(t.get("GlobalSecondaryIndexes") or [], key=lambda g: g["IndexName"]):
        gb = Block("global_secondary_index").attr("name", g["IndexName"]).attr("hash_key", _key(g["KeySchema"], "HASH"))
        if _key(g["KeySchema"], "RANGE"):
            gb.attr("range_key", _key(g["KeySchema"], "RANGE"))
        _projection(gb, g)
        if provisioned:
            gt = g.get("ProvisionedThroughput") or {}
            gb.attr("read_capacity", int(gt.get("ReadCapacityUnits") or 0))
            gb.attr("write_capacity", int(gt.get("WriteCapacityUnits") or 0))
        g_on_demand = _on_demand(g)
        if g_on_demand is not None:
            gb.blank().block(g_on_demand)
        r.blank().block(gb)

    for lsi in sorted(t.get("LocalSecondaryIndexes") or [], key=lambda i: i["IndexName"]):
        lb = Block("local_secondary_index").attr("name", lsi["IndexName"])
        lb.attr("range_key", _key(lsi["KeySchema"], "RANGE"))
        _projection(lb, lsi)
        r.blank().block(lb)

    pitr = (facts.backups.get("PointInTimeRecoveryDescription") or {}).get("PointInTimeRecoveryStatus")
    pb = Block("point_in_time_recovery").attr("enabled", pitr == "ENABLED")
    period = _positive((facts.backups.get("PointInTimeRecoveryDescription") or {}).get("RecoveryPeriodInDays"))
    if pitr == "ENABLED" and period is not None:
        pb.attr("recovery_period_in_days", period)
    r.blank().block(pb)

    if facts.ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and facts.ttl.get("AttributeName"):
        r.blank().block(Block("ttl").attr("enabled", True).attr("attribute_name", facts.ttl["AttributeName"]))

    sse = t.get("SSEDescription") or {}
    r.blank()
    if sse.get("Status") in ("ENABLED", "ENABLING") and sse.get("SSEType") == "KMS" and sse.get("KMSMasterKeyArn"):
        r.comment("Encrypted at rest with this KMS key.")
        r.block(Block("server_side_encryption").attr("enabled", True).attr("kms_key_arn", sse["KMSMasterKeyArn"]))
    else:
        r.comment(
            "Encrypted at rest with an AWS owned key, DynamoDB's default, which is no server_side_encryption\n"
            "block (`enabled = true` would switch the table to a KMS key)."
        )

    r.blank().comment(
        "The table's tags as they are now (migrator's own, managed-by and migrator:migration, included, so\n"
        "the first plan changes nothing; drop them in a later change if you like)."
    )
    r.string_map("tags", facts.tags)
    return r


def import_block(address: str, table_name: str) -> Block:
    return Block("import").attr("to", Raw(address)).attr("id", table_name)


def render(address: str, facts: TableFacts, *, header: str = "") -> str:
    """The whole file: a comment saying where it comes from, the ``import`` block, the resource block."""
    name = resource_name(address)
    parts = []
    if header:
        parts.append("\n".join(f"# {line}".rstrip() for line in header.splitlines()))
    parts.append("\n".join(import_block(address, str(facts.table["TableName"])).lines()))
    parts.append("\n".join(table_block(name, facts).lines()))
    return "\n\n".join(parts) + "\n"
