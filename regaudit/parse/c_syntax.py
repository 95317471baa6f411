"""Small readers of tree-sitter-c syntax nodes: text, declarators, member chains, root variables.

Pure functions over nodes (duck-typed; this module does not import tree_sitter). They know the
grammar's node and field names and nothing about the fact schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Node = Any  # tree_sitter.Node; kept abstract so only parser.py imports tree_sitter

_TRANSPARENT = {"parenthesized_expression"}
_CHAIN_LINKS = ("field_expression", "subscript_expression")
LITERALS = {"number_literal", "char_literal", "string_literal", "concatenated_string", "null", "true",
            "false"}


def text(node: Node) -> str:
    """Node text with whitespace runs folded (continuations in macro bodies included)."""
    raw = node.text.decode("utf-8", "replace")
    return " ".join((raw.replace("\\\n", " ") if "\\\n" in raw else raw).split())


def unwrap(node: Node | None) -> Node | None:
    """Strip parentheses: `((regs))` -> `regs`."""
    while node is not None and node.type in _TRANSPARENT:
        node = node.named_children[0] if node.named_children else None
    return node


def unwrap_casts(node: Node | None) -> Node | None:
    """Strip parentheses and casts: `(void *)(regs)` -> `regs`."""
    while node is not None:
        kind = node.type
        if kind == "cast_expression":
            node = node.child_by_field_name("value")
        elif kind in _TRANSPARENT:
            node = node.named_children[0] if node.named_children else None
        else:
            break
    return node


def root_identifier(node: Node | None) -> str | None:
    """The variable an lvalue-ish expression is rooted at: `&regs->regs[3]` -> 'regs'."""
    while node is not None:
        kind = node.type
        if kind == "identifier":
            return node.text.decode()
        if kind in ("field_expression", "subscript_expression") or kind == "pointer_expression":
            node = node.child_by_field_name("argument")
        elif kind in ("parenthesized_expression", "cast_expression"):
            node = unwrap_casts(node)
        else:
            return None
    return None


def declarator_name_type(declarator: Node | None, base_type: str) -> tuple[str | None, str]:
    """Name and full type of a declarator: (`*regs`, 'struct pt_regs') -> ('regs', 'struct pt_regs *').

    A function declarator makes a function type: `*(*get)(int)` on 'T' -> 'T * (*)(int)'.
    """
    outer_stars = inner_stars = suffix = ""
    params: str | None = None
    node = declarator
    name = None
    while node is not None:
        kind = node.type
        if kind in ("identifier", "field_identifier", "type_identifier"):
            name = node.text.decode()
            break
        if kind == "pointer_declarator":
            if params is None:
                outer_stars += "*"
            else:
                inner_stars += "*"
            node = node.child_by_field_name("declarator")
        elif kind == "array_declarator":
            size = node.child_by_field_name("size")
            suffix = f"[{text(size) if size is not None else ''}]" + suffix
            node = node.child_by_field_name("declarator")
        elif kind == "function_declarator":
            params = text(node.child_by_field_name("parameters"))
            node = node.child_by_field_name("declarator")
        elif kind in ("init_declarator", "attributed_declarator", "parenthesized_declarator"):
            node = node.child_by_field_name("declarator") or (
                node.named_children[0] if node.named_children else None)
        else:
            break
    full = _join_type(base_type, outer_stars, suffix)
    if params is not None:
        full = f"{full} ({inner_stars}){params}"
    return name, full


def function_return_type(definition: Node) -> str:
    """Return type of a function definition: the pointers above its function declarator count."""
    stars = ""
    node = definition.child_by_field_name("declarator")
    while node is not None and node.type != "function_declarator":
        if node.type == "pointer_declarator":
            stars += "*"
        node = node.child_by_field_name("declarator")
    return _join_type(type_text(definition), stars, "")


def _join_type(base: str, stars: str, suffix: str) -> str:
    result = base
    if stars:
        result += " " + stars
    if suffix:
        result += " " + suffix
    return result


def type_text(declaration: Node) -> str:
    """The base type of a declaration/parameter/field, with `const`/`volatile` dropped."""
    type_node = declaration.child_by_field_name("type")
    return text(type_node) if type_node is not None else ""


def function_declarator(node: Node) -> Node | None:
    """The function_declarator inside a function definition's declarator chain."""
    current = node.child_by_field_name("declarator")
    while current is not None and current.type != "function_declarator":
        current = current.child_by_field_name("declarator")
    return current


@dataclass(frozen=True)
class MemberChain:
    """`data->regs_intr.regs`: base `data`, via '->', path 'regs_intr.regs', top = the outer node."""

    base: Node
    via: str
    path: str
    top: Node


def member_chain(field: Node) -> MemberChain | None:
    """The whole member chain that starts at `field` when it is the innermost field_expression.

    Returns None for a field_expression that is the outer part of a longer chain, so that each
    chain is reported once, from its innermost hop, with the full path.
    """
    base = unwrap(field.child_by_field_name("argument"))
    if base is not None and _is_chain_link(base):
        return None
    via = _operator(field)
    parts = [field.child_by_field_name("field").text.decode()]
    top, parent = field, field.parent
    while parent is not None:
        kind = parent.type
        if kind == "subscript_expression" and parent.child_by_field_name("argument") == top:
            parts[-1] += _index_text(parent.child_by_field_name("index"))
        elif kind == "field_expression" and parent.child_by_field_name("argument") == top:
            parts.append(_operator(parent))
            parts.append(parent.child_by_field_name("field").text.decode())
        elif kind == "parenthesized_expression":
            above = parent.parent
            if above is None or above.type not in _CHAIN_LINKS:
                break
            top, parent = parent, above  # `(regs->x)[3]`: the chain continues through the parentheses
            continue
        else:
            break
        top, parent = parent, parent.parent
    return MemberChain(base=base, via=via, path=_join_path(parts), top=top)


def _is_chain_link(node: Node) -> bool:
    while node is not None:
        kind = node.type
        if kind != "subscript_expression":
            return kind == "field_expression"
        node = unwrap(node.child_by_field_name("argument"))
    return False


def _operator(field: Node) -> str:
    operator = field.child_by_field_name("operator")
    return operator.text.decode() if operator is not None else "."


def _index_text(index: Node | None) -> str:
    index = unwrap(index)
    if index is not None and index.type == "number_literal":
        value = index.text.decode().rstrip("uUlL")
        try:
            return f"[{int(value, 0)}]"
        except ValueError:
            return f"[{value}]"
    return "[*]"


def _join_path(parts: list[str]) -> str:
    """['regs_intr', '.', 'regs'] -> 'regs_intr.regs'; a lone name stays itself."""
    return "".join(parts)


def member_path_of(expr: Node | None) -> tuple[str | None, str | None]:
    """(root variable, member path) of `var->a.b` or `&var->a`, (root, None) for a bare variable."""
    node = unwrap_casts(expr)
    kind = node.type if node is not None else None
    if kind == "pointer_expression":
        node = unwrap_casts(node.child_by_field_name("argument"))
        kind = node.type if node is not None else None
    if node is None:
        return None, None
    inner = node
    while kind in _CHAIN_LINKS:
        argument = unwrap(inner.child_by_field_name("argument"))
        argument_kind = argument.type if argument is not None else None
        if argument_kind not in _CHAIN_LINKS:
            break
        inner, kind = argument, argument_kind
    if kind == "field_expression":
        chain = member_chain(inner)
        if chain is not None:
            return root_identifier(chain.base), chain.path
    return root_identifier(node), None


def is_address_of(expr: Node | None) -> bool:
    node = unwrap_casts(expr)
    return node is not None and node.type == "pointer_expression" and _operator_token(node) == "&"


def _operator_token(node: Node) -> str:
    operator = node.child_by_field_name("operator")
    return operator.text.decode() if operator is not None else ""


def operator_of(node: Node) -> str:
    return _operator_token(node)
