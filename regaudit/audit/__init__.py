"""The check stage and the audit: frame pointers from ftrace sources, joined with the frame models, become findings.

`seeds` places the rules' sources in the facts, `decide` evaluates branch conditions from a frame
model, `verdict` compares one access with one frame model, `check` runs an architecture's propagation
and bridges into findings, `document` is the JSON contract read from the audit tables, `run` chains
link → frames → check for the CLI and publishes the audit.
"""
