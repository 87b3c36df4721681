"""One-off converter (kept for review): frozen, slotted dataclasses to Frozen subclasses.

    python benchmarks/undataclass.py BASE_MODULE BASE_NAME [--skip NAME,...] FILE...

Each ``@dataclass(frozen=True, slots=True[, init=False])`` class of the files becomes a
subclass of BASE_NAME with ``__slots__`` and ``__match_args__`` listing its fields, field
defaults moved into an ``__init__`` written like the dataclass's (which calls ``__post_init__``
when the class has one); a class that spells out its ``__init__`` keeps it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def convert(path: Path, base_module: str, base: str, skip: frozenset[str] = frozenset()) -> int:
    source = path.read_text()
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    edits: list[tuple[int, int, list[str]]] = []  # (first line, end line exclusive, new lines)
    count = 0
    used: set[str] = set()
    mutable_base = base.replace("Frozen", "Record")
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or not node.decorator_list:
            continue
        decorator = node.decorator_list[0]
        text = ast.get_source_segment(source, decorator) or ""
        mutable = text == "dataclass(slots=True)"
        if not text.startswith("dataclass(frozen=True, slots=True") and not mutable:
            continue
        assert len(node.decorator_list) == 1 and not node.bases, node.name
        body_text = ast.get_source_segment(source, node) or ""
        if node.name in skip or ("field(" in body_text and not mutable):
            continue  # kept a dataclass: ``replace``/``fields`` use it, or a field() option
        count += 1
        fields: list[tuple[str, str, str | None]] = []
        has_init = has_post_init = False
        first_def = None
        last_field_end = None
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                annotation = ast.get_source_segment(source, item.annotation) or ""
                if "ClassVar" in annotation:
                    continue
                default = (
                    ast.get_source_segment(source, item.value) if item.value is not None else None
                )
                if default is not None and default.startswith("field("):
                    call = item.value
                    assert isinstance(call, ast.Call) and not call.args, (node.name, default)
                    assert [k.arg for k in call.keywords] == ["default_factory"], default
                    factory = ast.get_source_segment(source, call.keywords[0].value)
                    default = f"FACTORY:{factory}"
                fields.append((item.target.id, annotation, default))
                if default is not None:
                    assert item.lineno == item.end_lineno, (node.name, item.target.id)
                    comment = lines[item.lineno - 1][item.end_col_offset :].rstrip("\n")
                    kept = f"    {item.target.id}: {annotation}{comment}\n"  # a comment stays
                    edits.append((item.lineno - 1, item.lineno, [kept]))
                last_field_end = item.end_lineno
            elif isinstance(item, ast.FunctionDef):
                has_init |= item.name == "__init__"
                has_post_init |= item.name == "__post_init__"
                if first_def is None:
                    first_def = item.lineno - 1 - len(item.decorator_list)
        names = "".join(f'"{name}", ' for name, _, _ in fields)
        names = f"({names[:-2]},)" if len(fields) == 1 else f"({names[:-2]})"
        # The class line and its decorator.
        chosen = mutable_base if mutable else base
        edits.append((decorator.lineno - 1, node.lineno, [f"class {node.name}({chosen}):\n"]))
        used.add(chosen)
        # __slots__ and __match_args__ after the docstring, or first in the body.
        body0 = node.body[0]
        has_doc = isinstance(body0, ast.Expr) and isinstance(body0.value, ast.Constant)
        at = body0.end_lineno if has_doc else body0.lineno - 1
        assert at is not None
        block = ["\n"] if has_doc else []
        block += [f"    __slots__ = {names}\n", f"    __match_args__ = {names}\n"]
        if not has_doc or fields:
            block.append("\n")
        edits.append((at, at, block))
        if not has_init and fields:

            def param(name: str, annotation: str, default: str | None) -> str:
                if default is None:
                    return f"{name}: {annotation}"
                if default.startswith("FACTORY:"):
                    return f"{name}: {annotation} | None = None"
                return f"{name}: {annotation} = {default}"

            def store(name: str, default: str | None, mutable: bool = mutable) -> str:
                if not mutable:
                    return f'        object.__setattr__(self, "{name}", {name})\n'
                if default is not None and default.startswith("FACTORY:"):
                    factory = default.removeprefix("FACTORY:")
                    return f"        self.{name} = {factory}() if {name} is None else {name}\n"
                return f"        self.{name} = {name}\n"

            params = ", ".join(param(*field) for field in fields)
            init = [f"    def __init__(self, {params}) -> None:\n"]
            init += [store(name, default) for name, _, default in fields]
            if has_post_init:
                init.append("        self.__post_init__()\n")
            if first_def is not None:
                edits.append((first_def, first_def, [*init, "\n"]))
            else:
                assert last_field_end is not None
                edits.append((last_field_end, last_field_end, ["\n", *init]))
    for start, end, new in sorted(edits, key=lambda edit: (edit[0], edit[1]), reverse=True):
        lines[start:end] = new
    text = "".join(lines)
    if count:
        text = text.replace(
            "from dataclasses import",
            f"from {base_module} import {', '.join(sorted(used))}\nfrom dataclasses import",
            1,
        )
    path.write_text(text)
    return count


if __name__ == "__main__":
    base_module, base_name, *files = sys.argv[1:]
    skipped: frozenset[str] = frozenset()
    if files[0] == "--skip":
        skipped = frozenset(files[1].split(","))
        files = files[2:]
    for file in files:
        print(file, convert(Path(file), base_module, base_name, skipped))
