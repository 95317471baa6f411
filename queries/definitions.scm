; Definitions: functions, function-like and object-like macros, struct/union bodies, typedefs,
; declarations (variables, locals), the preprocessor branches that guard them, and labels.
; Capture vocabulary (shared by every query in this directory): @function @macro @define @struct
; @typedef @declaration @branch @label @call @field @assignment @initializer @designated @if @ternary @logical
(function_definition) @function
(preproc_function_def) @macro
(preproc_def) @define
(struct_specifier body: (field_declaration_list)) @struct
(union_specifier body: (field_declaration_list)) @struct
(type_definition) @typedef
(declaration) @declaration
[(preproc_if) (preproc_ifdef) (preproc_elif) (preproc_elifdef) (preproc_else)] @branch
(labeled_statement) @label
