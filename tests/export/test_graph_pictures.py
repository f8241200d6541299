"""``paperkb graph --format svg|png``: our own SVG, matplotlib's PNG, no Graphviz."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

from kb.publish.graph_draw import layout, to_svg


def test_svg_of_the_bundled_vault_and_a_neighbourhood(tmp_path, bundled_vault):
    cmd = [sys.executable, "-m", "cli.app", "--vault", str(bundled_vault), "graph"]
    whole = subprocess.run(cmd + ["--format", "svg"], capture_output=True, timeout=120)
    assert whole.returncode == 0, whole.stderr
    root = ET.fromstring(whole.stdout)  # well-formed XML
    circles = root.findall(".//{http://www.w3.org/2000/svg}circle")
    assert sum("paper" in c.get("class") for c in circles) == 3
    assert sum("ghost" in c.get("class") for c in circles) >= 5
    near = subprocess.run(cmd + ["--format", "png", "--around", "touvronLlamaOpenFoundation2023", "--depth", "0",
                                 "-o", str(tmp_path / "g.png")], capture_output=True, timeout=120)
    assert near.returncode == 0, near.stderr
    assert (tmp_path / "g.png").read_bytes().startswith(b"\x89PNG")
    bad = subprocess.run(cmd + ["--format", "svg", "--around", "No Such Note"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ")


def test_svg_escapes_labels_and_large_layout_is_bounded():
    import networkx as nx

    g = nx.DiGraph()
    g.add_node("a", kind="note", label='<script>alert(1)</script> & "q"')
    g.add_node("ghost:x", kind="ghost", label="x")
    g.add_edge("a", "ghost:x")
    svg = to_svg(g, href=lambda n: "notes/a.html")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)
    big = nx.gnm_random_graph(1500, 3000, seed=1, directed=True)
    pos = layout(big)
    assert len(pos) == 1500 and all(0 <= x <= 1 and 0 <= y <= 1 for x, y in pos.values())
