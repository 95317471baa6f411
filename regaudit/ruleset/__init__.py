"""Kernel knowledge that cannot be derived from C: the TOML files under rules/.

`load` reads and validates them (shared conventions and per-kind schemas); `evidence` checks the
lines they cite against a kernel tree. Consumers of a particular kind (frame models, bridges) read
`RuleFile.data` through their own modules; nothing here interprets what a rule means.
"""
