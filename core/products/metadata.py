"""Product metadata read by its structure, never flattened: the same key can stand in several groups of one file
(a Landsat Collection 2 MTL carries ``REFLECTANCE_MULT_BAND_n`` in LEVEL2_SURFACE_REFLECTANCE_PARAMETERS, the
surface-reflectance scale, and again in LEVEL1_RADIOMETRIC_RESCALING, the top-of-atmosphere one), so a value is
always looked up by its path of groups.

One tree for the three forms USGS and NASA write: ODL text (``GROUP = X`` ... ``END_GROUP = X``, and ``OBJECT`` /
``END_OBJECT`` in MODIS / HDF-EOS metadata), XML (elements), JSON (objects). The tree is nested dicts; a leaf is a
string; a key repeated within one group keeps its first value.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from ..errors import InputError

Tree = dict


def parse_odl(text: str) -> Tree:
    """ODL / PVL text: ``GROUP = NAME`` opens a group, ``END_GROUP = NAME`` (or a bare ``END_GROUP``) closes it;
    ``KEY = value`` is a leaf (quotes stripped); ``END`` ends the file."""
    root: Tree = {}
    stack = [root]
    for line in text.splitlines():
        line = line.strip()
        if not line or line == "END":
            continue
        m = re.match(r"^(\w+)\s*=\s*(.*?)\s*$", line)
        if m is None:
            if line in ("END_GROUP", "END_OBJECT") and len(stack) > 1:
                stack.pop()
            continue
        key, value = m.group(1), m.group(2).strip('"')
        if key in ("GROUP", "OBJECT"):
            child: Tree = {}
            stack[-1].setdefault(value, child)
            stack.append(child if stack[-1][value] is child else stack[-1][value])
        elif key in ("END_GROUP", "END_OBJECT"):
            if len(stack) > 1:
                stack.pop()
        else:
            stack[-1].setdefault(key, value)
    return root


def _root(text: str, what: str):
    """The root element of an XML text; an :class:`InputError` naming ``what`` if it is not readable XML."""
    try:
        return ET.fromstring(text.encode("utf-8"))
    except ET.ParseError as exc:
        raise InputError(f"{what}: not readable XML ({exc}).") from None


def parse_xml(text: str, what: str = "metadata") -> Tree:
    """XML as nested dicts by element tag (namespaces dropped); an element's attributes are kept under
    ``@name`` keys of its dict, a leaf's text as the value (a leaf with attributes: ``{"@...": ..., "#text": t}``)."""
    element = _root(text, what)
    return {_tag(element): _element(element)}


def _tag(element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _element(element):
    children = list(element)
    if not children and not element.attrib:
        return (element.text or "").strip()
    node: Tree = {f"@{k}": v for k, v in element.attrib.items()}
    if not children:
        node["#text"] = (element.text or "").strip()
        return node
    for child in children:
        node.setdefault(_tag(child), _element(child))
    return node


def parse_json(text: str, what: str = "metadata") -> Tree:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{what}: not readable JSON ({exc}).") from None
    if not isinstance(value, dict):
        raise InputError(f"{what}: a JSON object was expected.")
    return value


def parse(text: str, name: str) -> Tree:
    """The tree of a metadata file by its form (``.json``, ``.xml``, else ODL text)."""
    lower = name.lower()
    if lower.endswith(".json"):
        return parse_json(text, name)
    if lower.endswith(".xml"):
        return parse_xml(text, name)
    return parse_odl(text)


def find_group(tree: Tree, name: str) -> Tree | None:
    """The first group called ``name`` anywhere in ``tree`` (depth first, in file order)."""
    if not isinstance(tree, dict):
        return None
    if isinstance(tree.get(name), dict):
        return tree[name]
    for value in tree.values():
        if isinstance(value, dict):
            found = find_group(value, name)
            if found is not None:
                return found
    return None


def leaf(group: Tree | None, key: str) -> str | None:
    """The text of ``group[key]`` (an XML leaf with attributes: its text), None where absent."""
    if not isinstance(group, dict) or key not in group:
        return None
    value = group[key]
    if isinstance(value, dict):
        value = value.get("#text")
    return None if value is None else str(value)


def elements(text: str, tags: tuple[str, ...], what: str = "metadata") -> dict[str, list]:
    """Every XML element named by one of ``tags`` (any namespace), in document order, by tag: for lists whose
    items repeat one tag (Sentinel-2's IMAGE_FILE, BOA_ADD_OFFSET); the text is parsed once."""
    found: dict[str, list] = {t: [] for t in tags}
    for e in _root(text, what).iter():
        tag = _tag(e)
        if tag in found:
            found[tag].append(e)
    return found
