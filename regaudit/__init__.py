"""regaudit: find kernel code that reads pt_regs members a sparse ftrace frame never filled.

The pipeline is index → link → check → report; the SQLite database is the seam between stages.
"""

__version__ = "0.1.0"
