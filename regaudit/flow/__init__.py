"""Flow analysis over the fact database: per-architecture linking (`link`), the points-to propagation of
frames (`propagate`), and the bridges derived from the kernel's C (`bpf_helpers`, `register_reads`).

Modules here read facts through `regaudit.facts` and never issue SQL themselves; where the index keeps no
fact (a `return` or `case` statement, an initializer entry), `c_text` parses the tree's source through
`regaudit.parse.parser`, the one module importing tree_sitter.
"""
