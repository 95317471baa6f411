"""Per-architecture kernel knowledge: Kconfig capabilities, struct layouts and frame models.

`kconfig` reads Kconfig files and `.config` only. The frame models are built in stages, each in its
own module: `config` (the modelled build and `#if` guards), `layout` (pt_regs and ftrace_regs member
names), `catalogue` (rules/frames and rules/producers.toml), `effects` (what a C function or macro
stores, read from the fact database), `buffers` (where a builder's pt_regs comes from), `producers`
(the composition, entry point `build_frame_models`), `frames` (the model records) and
`frames_report` (JSON, text, table). Only `regaudit.facts.arch_facts` issues SQL for them.
"""
