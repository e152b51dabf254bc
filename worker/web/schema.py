"""Processors' parameters as JSON schema, and enqueue forms built from (and read by) it.

A form field per top-level property: a text, number or checkbox input for scalars, a
JSON textarea for the rest. What the form sends is turned back into a params object
here and then validated by `Admin.enqueue`, exactly as the CLI's `--params` is.
"""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import json
import textwrap
from dataclasses import dataclass
from typing import Any

from worker.admin import AdminError


@functools.lru_cache(maxsize=1)
def _schemas() -> dict[str, Any]:
    from processors.base import PermanentError
    from processors.registry import get_processor_class, known_names

    out: dict[str, Any] = {}
    for name in sorted(known_names()):
        try:
            cls = get_processor_class(name)
            schema = cls.Params.model_json_schema()
            for field, doc in field_docs(cls.Params).items():
                prop = schema.get("properties", {}).get(field)
                if prop is not None and not prop.get("description"):
                    prop["description"] = doc
            out[name] = {"doc": (cls.__doc__ or "").strip(), "schema": schema, "error": None}
        except (PermanentError, ImportError, Exception) as exc:  # an extra not installed
            out[name] = {"doc": "", "schema": None, "error": str(exc)}
    return out


def field_docs(model: type) -> dict[str, str]:
    """The docstrings written under a pydantic model's fields (and its bases' fields)."""
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def processor_schemas() -> dict[str, Any]:
    """{name: {"doc", "schema" (JSON schema of its Params) or None, "error"}}."""
    return _schemas()


@dataclass(frozen=True)
class FormField:
    name: str
    kind: str  # "text", "number", "integer", "checkbox", "json", "select"
    required: bool
    default: Any
    description: str
    choices: tuple[str, ...] = ()

    @property
    def default_text(self) -> str:
        if self.default is None:
            return ""
        if self.kind == "json":
            return json.dumps(self.default)
        return str(self.default)


def _type_of(prop: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    if "enum" in prop:
        return "select", tuple(str(v) for v in prop["enum"])
    types = [prop.get("type")] + [p.get("type") for p in prop.get("anyOf", []) if p]
    types = [t for t in types if t and t != "null"]
    kind = types[0] if len(types) == 1 else "json"
    return {
        "string": "text",
        "number": "number",
        "integer": "integer",
        "boolean": "checkbox",
    }.get(kind, "json"), ()


def form_fields(schema: dict[str, Any] | None) -> list[FormField]:
    if not schema:
        return []
    required = set(schema.get("required", []))
    fields = []
    for name, prop in schema.get("properties", {}).items():
        kind, choices = _type_of(prop)
        fields.append(
            FormField(
                name=name,
                kind=kind,
                required=name in required,
                default=prop.get("default"),
                description=prop.get("description") or "",
                choices=choices,
            )
        )
    return fields


def params_from_form(schema: dict[str, Any] | None, form: dict[str, str]) -> dict[str, Any]:
    """The params object a submitted form describes; empty fields are left out (their
    defaults apply). Raises AdminError(422) on a number or JSON field that does not parse."""
    params: dict[str, Any] = {}
    for f in form_fields(schema):
        key = f"p.{f.name}"
        if f.kind == "checkbox":
            params[f.name] = key in form
            continue
        text = form.get(key, "").strip()
        if text == "":
            continue
        try:
            if f.kind == "integer":
                params[f.name] = int(text)
            elif f.kind == "number":
                params[f.name] = float(text)
            elif f.kind == "json":
                params[f.name] = json.loads(text)
            else:
                params[f.name] = text
        except ValueError:
            raise AdminError(f"{f.name}: not a valid {f.kind} ({text[:40]!r})") from None
    return params
