"""The fact database: schema (migrations), the writer the index stage uses, and read helpers.

This package is the seam between stages. Nothing outside it writes SQL against the fact tables.
"""
