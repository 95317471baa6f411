"""Flow analysis over the fact database: per-architecture linking (`link`), later propagation and bridges.

Modules here read facts through `regaudit.facts` facades and never issue SQL or parse C themselves.
"""
