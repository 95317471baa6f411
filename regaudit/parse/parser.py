"""The one place that imports tree_sitter: the C language, a parser, and queries loaded by name.

tree-sitter's Python API moved between 0.22, 0.25 and 0.26 (Query construction, QueryCursor and
the shape `captures` returns); pinning it here keeps that churn to one file. Targets 0.25/0.26:
`Query(language, source)` and `QueryCursor(query).captures(node) -> dict[str, list[Node]]`.
"""

from __future__ import annotations

from functools import cache

import tree_sitter
import tree_sitter_c

from regaudit.resources import data_dir

Node = tree_sitter.Node
Tree = tree_sitter.Tree

QUERY_NAMES = ("definitions", "expressions")


@cache
def c_language() -> tree_sitter.Language:
    return tree_sitter.Language(tree_sitter_c.language())


@cache
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(c_language())


def parse(text: bytes) -> Tree:
    return _parser().parse(text)


@cache
def query(names: str | tuple[str, ...]) -> tree_sitter.Query:
    """Compile queries/<name>.scm once per process; several names make one query (one pass over a tree)."""
    wanted = (names,) if isinstance(names, str) else names
    unknown = [name for name in wanted if name not in QUERY_NAMES]
    if unknown:
        raise KeyError(f"unknown query {unknown[0]!r}")
    source = "\n".join((data_dir("queries") / f"{name}.scm").read_text() for name in wanted)
    return tree_sitter.Query(c_language(), source)


def captures(names: str | tuple[str, ...], node: Node) -> dict[str, list[Node]]:
    """Captures of query `names` under `node`, by capture name, each list in document order, an outer
    node before the inner ones that start with it (`CLASS(fd, arg)(x)`): the cursor leaves such ties
    in no fixed order, and the facts' row order must not change from run to run."""
    found = tree_sitter.QueryCursor(query(names)).captures(node)
    return {capture: sorted(nodes, key=lambda n: (n.start_byte, -n.end_byte)) for capture, nodes in found.items()}


def count_errors(root: Node) -> int:
    """ERROR and MISSING nodes: where the grammar could not see through kernel macros."""
    if not root.has_error:
        return 0
    count = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            count += 1
        if node.has_error:
            stack.extend(node.children)
    return count
