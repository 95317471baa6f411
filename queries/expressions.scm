; Expressions inside function and macro bodies (and file-scope initializers).
; Capture vocabulary: see definitions.scm.
(call_expression) @call
(field_expression) @field
(assignment_expression) @assignment
(init_declarator value: (_)) @initializer
(initializer_pair designator: (field_designator)) @designated
; What makes branch conditions (regaudit/parse/branches.py): if arms, ?: arms, right operands of && and ||.
(if_statement) @if
(conditional_expression) @ternary
(binary_expression operator: ["&&" "||"]) @logical
