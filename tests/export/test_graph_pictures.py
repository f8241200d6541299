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


# ---- labels stay inside the picture ----------------------------------------------------------
_SVG = "{http://www.w3.org/2000/svg}"


def _label_extents(svg: str) -> tuple[float, list[tuple[str, float, float]]]:
    """(the viewBox's width, [(label, left, right)]) with each label measured in DejaVu Sans
    (matplotlib's own font and the widest common sans-serif) at the SVG's font size."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    root = ET.fromstring(svg)
    width = float(root.get("viewBox").split()[2])
    font = FontProperties(family="DejaVu Sans", size=float(root.get("font-size")))
    measure = TextToPath()
    out = []
    for text in root.iter(_SVG + "text"):
        w = measure.get_text_width_height_descent(text.text, font, ismath=False)[0]
        x = float(text.get("x"))
        left = x - w if text.get("text-anchor") == "end" else x
        out.append((text.text, left, left + w))
    return width, out


def _graph_with_long_labels():
    import networkx as nx

    g = nx.DiGraph()
    labels = ["WWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWW", "Llama 2: Open Foundation and Fine-Tuned Chat Models",
              "Ünïcödé — “quoted” titles with accents ÆŒ", "short", "mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"]
    for i, label in enumerate(labels):
        g.add_node(f"n{i}", kind="note" if i % 2 else "ghost", label=label)
    return g, labels


def test_svg_labels_fit_inside_the_view_box():
    """A node at the right edge (or at either edge of a narrow picture) has its whole label
    inside the viewBox: it goes to the node's left, or is shifted in, or is cut with "…"."""
    import pytest

    pytest.importorskip("matplotlib")
    g, labels = _graph_with_long_labels()
    for width, pos in [
        (900, {f"n{i}": (1.0, i / 4) for i in range(5)}),  # every node on the right edge
        (900, {f"n{i}": (0.0, i / 4) for i in range(5)}),  # every node on the left edge
        (900, {f"n{i}": (i / 4, i / 4) for i in range(5)}),
        (300, {f"n{i}": (0.5, i / 4) for i in range(5)}),  # narrower than the longest label
        (640, layout(g)),
    ]:
        view, extents = _label_extents(to_svg(g, pos, width=width, height=300))
        assert len(extents) == 5 and view == width
        for text, left, right in extents:
            assert 0 <= left and right <= view, (width, text, left, right)
    # room enough: labels are whole (up to the 40-character cut), never shortened to fit
    _, extents = _label_extents(to_svg(g, {f"n{i}": (1.0, i / 4) for i in range(5)}, width=900, height=300))
    assert sorted(t for t, _, _ in extents) == sorted(x if len(x) <= 40 else x[:39] + "…" for x in labels)


def test_bundled_vault_graph_labels_fit(bundled_vault):
    import pytest

    pytest.importorskip("matplotlib")
    from kb.publish.graph_draw import citation_picture
    from kb.vault import Vault

    with Vault(bundled_vault) as vault:
        svg = citation_picture(vault, "svg").decode("utf-8")
    view, extents = _label_extents(svg)
    assert extents
    assert all(0 <= left and right <= view for _, left, right in extents), extents
