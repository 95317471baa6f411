"""Parsing kernel C into facts. `parser` is the only module in regaudit that imports tree_sitter.

`prepare` rewrites kernel dialect to plain C without moving lines, `parser` parses and runs the
queries from queries/, `extract` turns captures into fact rows.
"""
