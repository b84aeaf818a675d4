"""Languages: file extensions, tree-sitter grammars from the wheels, definition queries.

Each query captures a definition node as `@definition.<kind>` and its name as `@name`.
Grammars come from the per-language PyPI wheels; nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import PurePath, PurePosixPath
from typing import Any

from tree_sitter import Language, Parser, Query


@dataclass(frozen=True)
class LanguageSpec:
    name: str
    module: str  # the grammar wheel's module
    function: str  # its function returning the language pointer
    query: str
    # Node types that wrap a definition and belong to its range (decorators, `export`).
    wrappers: frozenset[str] = frozenset()
    # Node types holding the statements of a definition (where big definitions are split).
    comment_types: frozenset[str] = frozenset({"comment"})
    extras: dict[str, Any] = field(default_factory=dict)


PYTHON_QUERY = """
(function_definition name: (identifier) @name) @definition.function
(class_definition name: (identifier) @name) @definition.class
(module (expression_statement (assignment left: (identifier) @name)) @definition.variable)
(class_definition body: (block (expression_statement (assignment left: (identifier) @name)) @definition.field))
"""

_JS_COMMON = """
(function_declaration name: (identifier) @name) @definition.function
(generator_function_declaration name: (identifier) @name) @definition.function
(method_definition name: [(property_identifier) (private_property_identifier)] @name) @definition.method
(variable_declarator name: (identifier) @name value: [(arrow_function) (function_expression) (generator_function)]) @definition.function
(program (lexical_declaration (variable_declarator name: (identifier) @name) @definition.variable))
(program (variable_declaration (variable_declarator name: (identifier) @name) @definition.variable))
(program (export_statement (lexical_declaration (variable_declarator name: (identifier) @name) @definition.variable)))
"""

JAVASCRIPT_QUERY = (
    _JS_COMMON
    + """
(class_declaration name: (identifier) @name) @definition.class
(field_definition property: [(property_identifier) (private_property_identifier)] @name) @definition.field
"""
)

TYPESCRIPT_QUERY = (
    _JS_COMMON
    + """
(class_declaration name: (type_identifier) @name) @definition.class
(abstract_class_declaration name: (type_identifier) @name) @definition.class
(interface_declaration name: (type_identifier) @name) @definition.interface
(type_alias_declaration name: (type_identifier) @name) @definition.type
(enum_declaration name: (identifier) @name) @definition.enum
(function_signature name: (identifier) @name) @definition.function
(method_signature name: [(property_identifier) (private_property_identifier)] @name) @definition.method
(abstract_method_signature name: [(property_identifier) (private_property_identifier)] @name) @definition.method
(public_field_definition name: [(property_identifier) (private_property_identifier)] @name) @definition.field
(property_signature name: (property_identifier) @name) @definition.field
(internal_module name: (identifier) @name) @definition.namespace
(module name: (string) @name) @definition.module
"""
)

GO_QUERY = """
(function_declaration name: (identifier) @name) @definition.function
(method_declaration name: (field_identifier) @name) @definition.method
(type_spec name: (type_identifier) @name type: (struct_type)) @definition.struct
(type_spec name: (type_identifier) @name type: (interface_type)) @definition.interface
(type_spec name: (type_identifier) @name) @definition.type
(type_alias name: (type_identifier) @name) @definition.type
(source_file (const_declaration (const_spec name: (identifier) @name) @definition.constant))
(source_file (var_declaration (var_spec name: (identifier) @name) @definition.variable))
(source_file (var_declaration (var_spec_list (var_spec name: (identifier) @name) @definition.variable)))
(field_declaration name: (field_identifier) @name) @definition.field
(method_elem name: (field_identifier) @name) @definition.method
"""

RUST_QUERY = """
(function_item name: (identifier) @name) @definition.function
(function_signature_item name: (identifier) @name) @definition.function
(struct_item name: (type_identifier) @name) @definition.struct
(union_item name: (type_identifier) @name) @definition.struct
(enum_item name: (type_identifier) @name) @definition.enum
(trait_item name: (type_identifier) @name) @definition.trait
(type_item name: (type_identifier) @name) @definition.type
(mod_item name: (identifier) @name) @definition.module
(const_item name: (identifier) @name) @definition.constant
(static_item name: (identifier) @name) @definition.variable
(macro_definition name: (identifier) @name) @definition.macro
(impl_item type: (_) @name) @definition.impl
(enum_variant name: (identifier) @name) @definition.enum_member
(field_declaration name: (field_identifier) @name) @definition.field
"""

JAVA_QUERY = """
(class_declaration name: (identifier) @name) @definition.class
(interface_declaration name: (identifier) @name) @definition.interface
(enum_declaration name: (identifier) @name) @definition.enum
(record_declaration name: (identifier) @name) @definition.class
(annotation_type_declaration name: (identifier) @name) @definition.interface
(method_declaration name: (identifier) @name) @definition.method
(constructor_declaration name: (identifier) @name) @definition.constructor
(field_declaration declarator: (variable_declarator name: (identifier) @name)) @definition.field
(enum_constant name: (identifier) @name) @definition.enum_member
"""

_C_COMMON = """
(function_definition declarator: (function_declarator declarator: (identifier) @name)) @definition.function
(function_definition declarator: (_ declarator: (function_declarator declarator: (identifier) @name))) @definition.function
(function_definition declarator: (_ declarator: (_ declarator: (function_declarator declarator: (identifier) @name)))) @definition.function
(struct_specifier name: (type_identifier) @name body: (field_declaration_list)) @definition.struct
(union_specifier name: (type_identifier) @name body: (field_declaration_list)) @definition.struct
(enum_specifier name: (type_identifier) @name body: (enumerator_list)) @definition.enum
(type_definition declarator: (type_identifier) @name) @definition.type
(preproc_def name: (identifier) @name) @definition.macro
(preproc_function_def name: (identifier) @name) @definition.macro
(enumerator name: (identifier) @name) @definition.enum_member
(field_declaration declarator: (field_identifier) @name) @definition.field
(translation_unit (declaration declarator: (init_declarator declarator: (identifier) @name)) @definition.variable)
"""

C_QUERY = _C_COMMON

CPP_QUERY = (
    _C_COMMON
    + """
(class_specifier name: (type_identifier) @name body: (field_declaration_list)) @definition.class
(namespace_definition name: (namespace_identifier) @name) @definition.namespace
(function_definition declarator: (function_declarator declarator: (qualified_identifier) @name)) @definition.function
(function_definition declarator: (_ declarator: (function_declarator declarator: (qualified_identifier) @name))) @definition.function
(function_definition declarator: (function_declarator declarator: [(field_identifier) (destructor_name) (operator_name)] @name)) @definition.method
(field_declaration declarator: (function_declarator declarator: [(field_identifier) (destructor_name) (operator_name)] @name)) @definition.method
(declaration declarator: (function_declarator declarator: [(destructor_name) (operator_name)] @name)) @definition.method
(alias_declaration name: (type_identifier) @name) @definition.type
"""
)

MARKDOWN_QUERY = """
(atx_heading heading_content: (inline) @name) @definition.heading
(setext_heading heading_content: (paragraph) @name) @definition.heading
"""

_WRAPPERS_JS = frozenset({"export_statement", "lexical_declaration", "variable_declaration"})

SPECS: dict[str, LanguageSpec] = {
    spec.name: spec
    for spec in (
        LanguageSpec(
            "python",
            "tree_sitter_python",
            "language",
            PYTHON_QUERY,
            frozenset({"decorated_definition"}),
        ),
        LanguageSpec(
            "javascript", "tree_sitter_javascript", "language", JAVASCRIPT_QUERY, _WRAPPERS_JS
        ),
        LanguageSpec(
            "typescript",
            "tree_sitter_typescript",
            "language_typescript",
            TYPESCRIPT_QUERY,
            _WRAPPERS_JS | {"ambient_declaration"},
        ),
        LanguageSpec(
            "tsx",
            "tree_sitter_typescript",
            "language_tsx",
            TYPESCRIPT_QUERY,
            _WRAPPERS_JS | {"ambient_declaration"},
        ),
        LanguageSpec(
            "go",
            "tree_sitter_go",
            "language",
            GO_QUERY,
            frozenset({"type_declaration", "const_declaration", "var_declaration"}),
        ),
        LanguageSpec(
            "rust",
            "tree_sitter_rust",
            "language",
            RUST_QUERY,
            comment_types=frozenset({"line_comment", "block_comment"}),
        ),
        LanguageSpec(
            "java",
            "tree_sitter_java",
            "language",
            JAVA_QUERY,
            comment_types=frozenset({"line_comment", "block_comment"}),
        ),
        LanguageSpec("c", "tree_sitter_c", "language", C_QUERY, frozenset({"type_definition"})),
        LanguageSpec(
            "cpp",
            "tree_sitter_cpp",
            "language",
            CPP_QUERY,
            frozenset({"template_declaration", "type_definition"}),
        ),
        LanguageSpec("markdown", "tree_sitter_markdown", "language", MARKDOWN_QUERY),
    )
}

EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "cpp",  # C++ headers are common and the C++ grammar parses C declarations
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".c++": "cpp",
    ".hh": "cpp",
    ".hpp": "cpp",
    ".hxx": "cpp",
    ".h++": "cpp",
    ".ipp": "cpp",
    ".inl": "cpp",
    ".md": "markdown",
    ".markdown": "markdown",
}

# LSP language ids (from the editor) that differ from ours.
LANGUAGE_IDS: dict[str, str] = {
    "javascriptreact": "javascript",
    "typescriptreact": "tsx",
    "c++": "cpp",
}


def language_for_path(path: str) -> str:
    """Our language name for a file, "text" when no grammar applies."""
    suffix = PurePosixPath(path).suffix.lower()
    return EXTENSIONS.get(suffix, "text")


PYTHON_LANGUAGE_IDS = frozenset({"python", "py", "pyi"})


def is_python(language_id: str = "", path: str | PurePath | None = None) -> bool:
    """Python source, by the editor's language id (any case) or else the file name.

    The one test for "is this Python" (Jedi, the context engine's definitions, snippets);
    `path` may be a path, a file name or a URI.
    """
    if language_id.lower() in PYTHON_LANGUAGE_IDS:
        return True
    return path is not None and language_for_path(str(path)) == "python"


def language_for_id(language_id: str, path: str) -> str:
    """Language from the editor's language id, falling back to the file name."""
    name = LANGUAGE_IDS.get(language_id, language_id)
    return name if name in SPECS else language_for_path(path)


@dataclass(frozen=True)
class Grammar:
    spec: LanguageSpec
    language: Language
    query: Query
    parser: Parser


@cache
def grammar(name: str) -> Grammar:
    """The loaded grammar of a language (once per process)."""
    spec = SPECS[name]
    module = importlib.import_module(spec.module)
    pointer: Callable[[], Any] = getattr(module, spec.function)
    language = Language(pointer())
    return Grammar(spec, language, Query(language, spec.query), Parser(language))
