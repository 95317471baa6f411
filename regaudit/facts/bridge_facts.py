"""Every SQL statement the bridge derivations need beyond `arch_facts` (`regaudit.flow.bpf_helpers`).

Owns two reads: where a function returning `struct bpf_func_proto *` is defined, and the designated
initializer fields of a `struct bpf_func_proto` variable (`.func = f`, `.arg1_type = ARG_PTR_TO_CTX`,
kept by the index as `bindings` rows). The index only parses files its prefilter selects: a proto or
func_proto function in a file it skipped is absent here (empty answer), and the caller then reads the
tree's source text instead. It never writes.
Limit inherited from the index: `bindings` keeps identifier values only, so a field written as an
expression (`ARG_PTR_TO_CTX | PTR_MAYBE_NULL`) is missing from `proto_fields`.
"""

from __future__ import annotations

from dataclasses import dataclass

from regaudit.facts.store import FactReader
from regaudit.parse.text_scan import PROTO_TAG

PROTO_STRUCT = f"struct {PROTO_TAG}"


@dataclass(frozen=True)
class Location:
    file: str
    line: int


@dataclass(frozen=True)
class ProtoField:
    """One `.field = VALUE` of a bpf_func_proto initializer."""

    field: str  # 'func', 'arg1_type', ...
    value: str  # 'bpf_get_stackid', 'ARG_PTR_TO_CTX'
    file: str
    line: int
    condition: str


class BridgeFacts(FactReader):
    """Read-only view of one fact database for the bridge derivations."""

    def proto_function_definitions(self, name: str) -> tuple[Location, ...]:
        """Definitions of function `name` whose return type is a `struct bpf_func_proto` pointer."""
        rows = self._conn.execute(
            "SELECT file, line FROM functions WHERE name = ? AND kind != 'macro' AND return_type LIKE ? "
            "ORDER BY file, line",
            (name, f"%{PROTO_TAG}%"),
        )
        return tuple(Location(*row) for row in rows)

    def proto_fields(self, proto: str) -> tuple[ProtoField, ...]:
        """The initializer fields of the file-scope `struct bpf_func_proto proto = { ... }`."""
        rows = self._conn.execute(
            "SELECT field, target, file, line, condition FROM bindings "
            "WHERE holder = ? AND struct_type = ? AND kind = 'initializer' AND function_id IS NULL "
            "ORDER BY file, line",
            (proto, PROTO_STRUCT),
        )
        return tuple(ProtoField(*row) for row in rows)
