#!/usr/bin/env python3
"""Checks that no module reaches into its parent's internals (issue 16): a child module file may
use its parent's public face (`pub`, `pub(crate)`, `pub(super)` items and its child modules) but
not items the parent keeps private, nor names the parent merely imported for itself, and never
`super::super` (a grandparent's insides). Unit-test modules (`#[cfg(test)]`: `tests`, `fuzz`...)
are exempt: testing a module's private items is their job.

    python3 scripts/check-module-imports.py        # lists offenders, exits 1 if any
"""
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ITEM = re.compile(
    r"^(?P<vis>pub(?:\([^)]*\))?\s+)?(?:(?:async|const|unsafe|extern \"C\")\s+)*"
    r"(?P<kind>fn|struct|enum|const|static|type|trait|mod|union|macro_rules!)\s+(?P<name>\w+)",
    re.M,
)
USE = re.compile(r"^(?P<vis>pub(?:\([^)]*\))?\s+)?use\s+(?P<tree>[^;]+);", re.M | re.S)
TEST_MOD = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*mod\s+(\w+)\s*;")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def leaf_names(tree):
    """The names a use tree brings in (`a::{b, c as d}` -> b, d; globs bring none by name)."""
    names = []
    for part in re.split(r"[{},]", re.sub(r"\s+", " ", tree)):
        part = part.strip()
        if not part or part.endswith("::") or part.endswith("*"):
            continue
        if " as " in part:
            names.append(part.split(" as ")[-1].strip())
        else:
            names.append(part.split("::")[-1])
    return names


def module_files(src):
    """(module path, file, parent file) for every module file below `src`."""
    out = []
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel in (["lib"], ["main"]):
                continue
            if rel[-1] == "mod":
                rel = rel[:-1]
            out.append((rel, path))
    return out


def parent_file(src, module):
    parent = module[:-1]
    if not parent:
        for root in ("lib.rs", "main.rs"):
            if os.path.exists(os.path.join(src, root)):
                return os.path.join(src, root)
        return None
    for candidate in (os.path.join(src, *parent) + ".rs", os.path.join(src, *parent, "mod.rs")):
        if os.path.exists(candidate):
            return candidate
    return None


def private_names(text):
    """Items and imports a module keeps to itself (no `pub`)."""
    text = strip_comments(text)
    private, public = set(), set()
    for m in ITEM.finditer(text):
        # A child module is a sibling of the module asking, not its parent's inside.
        (public if m.group("vis") or m.group("kind") == "mod" else private).add(m.group("name"))
    for m in USE.finditer(text):
        for name in leaf_names(m.group("tree")):
            (public if m.group("vis") else private).add(name)
    return private - public


def test_modules(text):
    return set(TEST_MOD.findall(text))


def main():
    offenders = []
    for crate in sorted(os.listdir(os.path.join(REPO, "crates"))):
        src = os.path.join(REPO, "crates", crate, "src")
        if not os.path.isdir(src):
            continue
        files = module_files(src)
        for module, path in files:
            parent = parent_file(src, module)
            if parent is None:
                continue
            with open(parent) as f:
                parent_text = f.read()
            # A unit-test module, or a file below one, may see everything.
            exempt = False
            for depth in range(1, len(module) + 1):
                anc_parent = parent_file(src, module[:depth])
                if anc_parent and module[depth - 1] in test_modules(open(anc_parent).read()):
                    exempt = True
            if exempt:
                continue
            private = private_names(parent_text)
            with open(path) as f:
                text = strip_comments(f.read())
            crate_path = "crate::" + "::".join(module[:-1]) + "::" if module[:-1] else None
            for lineno, line in enumerate(text.splitlines(), 1):
                if "super::super" in line:
                    offenders.append(f"{os.path.relpath(path, REPO)}:{lineno}: super::super: {line.strip()}")
            refs = []
            for m in USE.finditer(text):
                tree = re.sub(r"\s+", "", m.group("tree"))
                for prefix in ["super::"] + ([crate_path] if crate_path else []):
                    if tree.startswith(prefix):
                        rest = tree[len(prefix):]
                        first = re.match(r"\w+", rest)
                        if rest.startswith("{"):
                            for part in re.split(r",(?![^{]*\})", rest[1:-1]):
                                head = re.match(r"\w+", part)
                                if head:
                                    refs.append(head.group(0))
                        elif first:
                            refs.append(first.group(0))
            for m in re.finditer(r"(?<![:\w])super::(\w+)", text):
                refs.append(m.group(1))
            for name in sorted(set(refs)):
                if name in private and name != "self":
                    offenders.append(f"{os.path.relpath(path, REPO)}: uses its parent's private `{name}`")
    for o in offenders:
        print(o, file=sys.stderr)
    if offenders:
        sys.exit(f"{len(offenders)} import(s) reach into a parent's internals")
    print("no module reaches into its parent's internals")


main()
