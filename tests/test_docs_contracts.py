"""docs/architecture.md against the code: the module paths it names and the signatures it quotes.

Each "## " heading names the modules of its section (`models/registry.py`, `models/export/`);
every `def`, `class`, constant and bare `Name(...)` constructor in the section's ```python
blocks is looked up in those modules and compared with `inspect.signature` of the real object:
parameter names, kinds and defaults (annotations and formatting are free). Indented lines and
`;`-separated statements after a `class` line describe that class's methods and attributes.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("models", "service")
PATH_PATTERN = re.compile(r"\b(?:models|service)/[\w/.*]*")
# A quoted constructor whose name stands for every class of a registry.
STAND_INS = {"Block": ("models.blocks", "BLOCK_TYPES")}
CLASS = r"((?:@\w+\s+)*)class\s+(\w+)\s*(?:\(([^)]*)\))?\s*:?\s*(.*)"
DEF = r"((?:@\w+\s+)*)def\s+(\w+)\s*\(.*"


@dataclasses.dataclass(frozen=True)
class Quoted:
    """One statement of a ```python block, with where it was found."""

    section: str  # the heading, e.g. "models/export/ — artifact bundles"
    paths: tuple[str, ...]  # the module paths the heading names
    line: int  # 1-based line in the doc
    text: str  # the statement, comments stripped
    owner: str | None  # the class a method or attribute belongs to

    @property
    def id(self) -> str:
        head = self.text.split("(")[0].split(":")[0].split("=")[0].split()[-1]
        return f"{self.owner}.{head}" if self.owner else head


def split_top_level(text: str, separator: str) -> list[str]:
    """`text` split at `separator` outside brackets and string literals."""
    parts, depth, quote, start = [], 0, "", 0
    for index, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == separator and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    return [*parts, text[start:]]


def strip_comment(line: str) -> str:
    return split_top_level(line, "#")[0].rstrip()


def bracket_depth(text: str) -> int:
    return sum(text.count(c) for c in "([{") - sum(text.count(c) for c in ")]}")


def section_paths(heading: str) -> tuple[str, ...]:
    return tuple(PATH_PATTERN.findall(heading))


def quoted_statements(doc: str) -> Iterator[Quoted]:
    section, in_code, owner = "", False, None
    pending, pending_line, decorators = "", 0, ""
    for number, raw in enumerate(doc.splitlines(), start=1):
        if not in_code and raw.startswith("## "):
            section = raw[3:].strip()
            continue
        if raw.strip().startswith("```"):
            in_code = raw.strip() == "```python"
            owner = None
            continue
        if not in_code:
            continue
        line = strip_comment(raw)
        if not line.strip():
            continue
        if pending:  # a signature continued over several lines
            line, number = pending + " " + line.strip(), pending_line
        if bracket_depth(line) > 0:
            pending, pending_line = line, number
            continue
        pending = ""
        if not line[:1].isspace():
            owner = None
        for statement in (s.strip() for s in split_top_level(line, ";")):
            if not statement or statement == "...":
                continue
            if re.fullmatch(r"@\w+", statement):  # a decorator line: joins the next statement
                decorators += statement + " "
                continue
            statement, decorators = decorators + statement, ""
            paths = section_paths(section)
            if match := re.fullmatch(CLASS, statement):
                yield Quoted(section, paths, number, statement, None)
                owner, rest = match.group(2), match.group(4).strip()
                if rest and rest != "...":
                    yield Quoted(section, paths, number, rest, owner)
                continue
            yield Quoted(section, paths, number, statement, owner)


def read_doc() -> str:
    return DOC.read_text(encoding="utf-8")


QUOTED = list(quoted_statements(read_doc()))


def module_name(path: str) -> str:
    return path.removesuffix("/").removesuffix(".py").replace("/", ".")


def resolve(item: Quoted, name: str) -> tuple[Any, str]:
    """The object `name` of the section's modules, and the module it was found in."""
    if not item.paths:
        pytest.fail(f"docs/architecture.md section {item.section!r} names no module to check")
    modules: list[ModuleType] = []
    for path in item.paths:
        try:
            modules.append(importlib.import_module(module_name(path)))
        except ImportError as error:
            pytest.fail(f"docs/architecture.md section {item.section!r}: {path}: {error}")
    for module in modules:
        if hasattr(module, name):
            found = getattr(module, name)
            return found, getattr(found, "__module__", None) or module.__name__
    names = ", ".join(m.__name__ for m in modules)
    pytest.fail(
        f"docs/architecture.md (line {item.line}) quotes {name} but none of {names} defines it"
    )


def doc_signature(item: Quoted, source: str) -> inspect.Signature:
    """The signature of a quoted `name(params)`, defaults as values (or their source text)."""
    try:
        tree = ast.parse(f"def _{source.split('(', 1)[1].rsplit(')', 1)[0].join('()')}: ...")
    except (SyntaxError, IndexError) as error:
        pytest.fail(f"docs/architecture.md (line {item.line}): cannot read {source!r}: {error}")
    arguments = tree.body[0].args
    kinds = inspect.Parameter
    positional = [(a, kinds.POSITIONAL_ONLY) for a in arguments.posonlyargs]
    positional += [(a, kinds.POSITIONAL_OR_KEYWORD) for a in arguments.args]
    defaults = [None] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)
    params = [
        inspect.Parameter(arg.arg, kind, default=literal(default))
        for (arg, kind), default in zip(positional, defaults, strict=True)
    ]
    if arguments.vararg:
        params.append(inspect.Parameter("args", kinds.VAR_POSITIONAL))
    params += [
        inspect.Parameter(arg.arg, kinds.KEYWORD_ONLY, default=literal(default))
        for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
    ]
    if arguments.kwarg:
        params.append(inspect.Parameter("kwargs", kinds.VAR_KEYWORD))
    return inspect.Signature(params)


class Source(str):
    """A default the doc writes as an expression: compared by its text."""

    def __repr__(self) -> str:
        return str(self)


def literal(node: ast.expr | None) -> Any:
    if node is None:
        return inspect.Parameter.empty
    try:
        return ast.literal_eval(node)
    except ValueError:
        return Source(ast.unparse(node))


def code_signature(obj: Any) -> inspect.Signature:
    """`obj`'s signature without annotations, `*args` / `**kwargs` named alike."""
    renamed = {inspect.Parameter.VAR_POSITIONAL: "args", inspect.Parameter.VAR_KEYWORD: "kwargs"}
    return inspect.Signature(
        [
            p.replace(name=renamed.get(p.kind, p.name), annotation=inspect.Parameter.empty)
            for p in inspect.signature(obj).parameters.values()
        ]
    )


def without_summarised_keywords(
    doc: inspect.Signature, code: inspect.Signature
) -> inspect.Signature:
    """A doc's `**kwargs` may stand for the code's further keyword-only parameters."""
    doc_kinds = {p.kind for p in doc.parameters.values()}
    code_kinds = {p.kind for p in code.parameters.values()}
    var_keyword = inspect.Parameter.VAR_KEYWORD
    if var_keyword not in doc_kinds or var_keyword in code_kinds:
        return code
    kept = [
        p
        for p in code.parameters.values()
        if p.name in doc.parameters
        or p.kind is not inspect.Parameter.KEYWORD_ONLY
        or p.default is inspect.Parameter.empty
    ]
    return inspect.Signature([*kept, inspect.Parameter("kwargs", var_keyword)])


def same_default(written: Any, actual: Any, namespace: dict[str, Any]) -> bool:
    if isinstance(written, Source):  # an expression: evaluated where the code lives
        try:
            written = eval(written, namespace)
        except Exception:
            return written == repr(actual)
    return type(written) is type(actual) and written == actual


def same_defaults(doc: inspect.Signature, code: inspect.Signature, namespace: dict) -> bool:
    return all(
        same_default(param.default, code.parameters[name].default, namespace)
        for name, param in doc.parameters.items()
    )


def differences(doc: inspect.Signature, code: inspect.Signature, namespace: dict) -> str:
    doc_names, code_names = list(doc.parameters), list(code.parameters)
    shared = [n for n in doc_names if n in code_names]
    notes = []
    if missing := [n for n in code_names if n not in doc_names]:
        notes.append(f"the doc lacks {', '.join(missing)}")
    if extra := [n for n in doc_names if n not in code_names]:
        notes.append(f"the code has no {', '.join(extra)}")
    if kinds := [n for n in shared if doc.parameters[n].kind is not code.parameters[n].kind]:
        notes.append(f"positional / keyword-only differ for {', '.join(kinds)}")
    written = {n: doc.parameters[n].default for n in shared}
    if defaults := [
        n for n in shared if not same_default(written[n], code.parameters[n].default, namespace)
    ]:
        notes.append(f"defaults differ for {', '.join(defaults)}")
    if not notes:
        notes.append("the parameters are in another order")
    return "; ".join(notes)


def check_signature(item: Quoted, name: str, obj: Any, source: str, where: str) -> None:
    doc = doc_signature(item, source)
    code = without_summarised_keywords(doc, code_signature(obj))
    matches = list(doc.parameters) == list(code.parameters) and all(
        doc.parameters[n].kind is code.parameters[n].kind for n in doc.parameters
    )
    namespace = vars(sys.modules[getattr(obj, "__module__", "builtins")])
    if not (matches and same_defaults(doc, code, namespace)):
        found = differences(doc, code, namespace)
        pytest.fail(
            f"docs/architecture.md (line {item.line}) says {name}{doc} "
            f"but the code ({where}) has {name}{code_signature(obj)}: {found}",
            pytrace=False,
        )


def check_class(item: Quoted) -> None:
    decorators, name, bases, _ = re.fullmatch(CLASS, item.text).groups()
    cls, where = resolve(item, name)
    assert inspect.isclass(cls), (
        f"docs/architecture.md (line {item.line}): {where}.{name} is no class"
    )
    ancestors = {c.__name__ for c in cls.__mro__}
    for base in (b.strip().split(".")[-1] for b in (bases or "").split(",") if b.strip()):
        assert base in ancestors, (
            f"docs/architecture.md (line {item.line}) says class {name}({bases}) "
            f"but {where}.{name} does not derive from {base}"
        )
    if "@dataclass" in decorators:
        assert dataclasses.is_dataclass(cls), (
            f"docs/architecture.md (line {item.line}) says @dataclass class {name} "
            f"but {where}.{name} is not a dataclass"
        )


def has_attribute(cls: type, name: str) -> bool:
    annotated = any(name in getattr(c, "__annotations__", {}) for c in cls.__mro__)
    return annotated or hasattr(cls, name)


def check_method(item: Quoted, decorators: str, name: str) -> None:
    cls, where = resolve(item, item.owner)
    qualified = f"{item.owner}.{name}"
    try:
        method = inspect.getattr_static(cls, name)
    except AttributeError:
        pytest.fail(
            f"docs/architecture.md (line {item.line}) quotes {qualified} "
            f"but {where}.{item.owner} has no {name}",
            pytrace=False,
        )
    for kind in (classmethod, staticmethod):
        said = f"@{kind.__name__}" in decorators
        if said != isinstance(method, kind):
            pytest.fail(
                f"docs/architecture.md (line {item.line}) says {qualified} is "
                f"{'' if said else 'not '}a {kind.__name__}, the code ({where}) disagrees",
                pytrace=False,
            )
    function = method.__func__ if isinstance(method, classmethod | staticmethod) else method
    check_signature(item, name, function, item.text, f"{where}.{qualified}")


def check_attribute(item: Quoted, name: str) -> None:
    cls, where = resolve(item, item.owner)
    assert has_attribute(cls, name), (
        f"docs/architecture.md (line {item.line}) says {item.owner} has {name} "
        f"but {where}.{item.owner} has no such attribute"
    )


def check_constructor(item: Quoted, name: str) -> None:
    if name in STAND_INS:
        module, registry = STAND_INS[name]
        classes = list(getattr(importlib.import_module(module), registry).values())
    else:
        classes = [resolve(item, name)[0]]
    for cls in classes:
        check_signature(item, name, cls, item.text, f"{cls.__module__}.{cls.__name__}")


def check_constant(item: Quoted, name: str, value: str) -> None:
    actual, where = resolve(item, name)
    assert actual == ast.literal_eval(value), (
        f"docs/architecture.md (line {item.line}) says {name} = {value} "
        f"but {where}.{name} is {actual!r}"
    )


def check(item: Quoted) -> None:
    text = item.text
    if match := re.fullmatch(DEF, text):
        decorators, name = match.groups()
        if item.owner is not None:
            check_method(item, decorators, name)
        else:
            function, where = resolve(item, name)
            check_signature(item, name, function, text, f"{where}.{name}")
    elif re.fullmatch(CLASS, text):
        check_class(item)
    elif match := re.fullmatch(r"(\w+)\s*(?::\s*[^=]+)?", text):  # `name` or `name: type`
        if item.owner is not None:
            check_attribute(item, match.group(1))
        else:
            resolve(item, match.group(1))
    elif match := re.fullmatch(r"([A-Z_][A-Z0-9_]*)\s*=\s*(.+)", text):
        check_constant(item, *match.groups())
    elif match := re.fullmatch(r"(\w+)\s*\(.*\)", text):
        check_constructor(item, match.group(1))
    else:
        pytest.fail(f"docs/architecture.md (line {item.line}): cannot read {text!r}")


@pytest.mark.parametrize("item", QUOTED, ids=[item.id for item in QUOTED])
def test_quoted_code_matches_the_code(item):
    check(item)


def test_the_doc_quotes_signatures_of_every_section_it_checks():
    sections = {item.section for item in QUOTED}
    assert any("models/export/" in s for s in sections)
    assert len(QUOTED) > 30, "the python blocks of docs/architecture.md were not found"


def test_every_module_path_the_doc_names_exists():
    problems = []
    for path in sorted(set(PATH_PATTERN.findall(read_doc()))):
        target = ROOT / path.rstrip("/.")
        if "*" in path:
            found = any(ROOT.glob(path))
        elif path.endswith(".py"):
            found = target.is_file()
            if not found and target.with_suffix("").is_dir():
                package = path.removesuffix(".py") + "/"
                problems.append(f"{path} is a package now: write {package}")
                continue
        elif path.endswith("/"):
            found = (target / "__init__.py").is_file()
        else:
            found = target.exists() or target.with_suffix(".py").is_file()
        if not found:
            problems.append(f"{path} does not exist")
    assert not problems, "docs/architecture.md names paths the code lacks: " + "; ".join(problems)
