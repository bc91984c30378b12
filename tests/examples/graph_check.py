"""The check of the graph.svg every example writes from its first training batch."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

SVG = "{http://www.w3.org/2000/svg}"


def assert_graph(path: Path, state_keys) -> list[str]:
    """One box per parameter, named as in the checkpoint's state dict, each with its
    gradient's shape (drawn after backward), and arrows between the boxes; returns the
    parameter names."""
    assert path.is_file(), f"{path} was not written"
    root = ET.parse(path).getroot()
    boxes = {g.get("id"): g for g in root.iter(f"{SVG}g")
             if g.get("class", "").startswith("node ")}
    params = [g for g in boxes.values() if g.get("class") == "node param"]
    names = [g.find(f"{SVG}text").text for g in params]
    assert names and set(names) <= set(state_keys), (names, sorted(state_keys))
    for g in params:
        assert g.findall(f"{SVG}text")[-1].text.startswith("grad ("), g.get("id")
    edges = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]
    assert edges and all(e.get("data-source") in boxes and e.get("data-target") in boxes
                         for e in edges)
    return names
