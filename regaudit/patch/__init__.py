"""`regaudit check`: the findings a patch adds to or fixes in a kernel tree, reported like checkpatch.pl.

`diffs` reads patches, `overlay` applies them in memory and as a scratch view of the tree, `run` audits both sides,
`compare` matches findings by fingerprint, `checkpatch` prints them, `commands` is the click command.
"""
