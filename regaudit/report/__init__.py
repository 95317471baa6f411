"""Renders an audit document (`regaudit-audit/1`) as terminal text, HTML, SARIF and JSON, and diffs two of them.

`model` validates and types the document; `text`, `html`, `sarif` and `diff` render it; `commands` holds
the thin `report` and `diff` click commands. Nothing here computes findings.
"""
