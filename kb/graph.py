"""The citation graph of a vault: a networkx MultiDiGraph.

Nodes:

* one per note, keyed by its vault path (``kind="note"``);
* ``ghost:<citekey>`` for a cited work that has no note yet
  (``kind="ghost"``);
* ``experiment:<id>`` for each experiment a claim names (``kind="experiment"``).

Edges (``kind`` attribute, also the multigraph key; repeated links of one kind between
two notes make one edge):

* ``cites``: a link the vault's citation rule marks (``kb.citing``: by default, under a
  heading starting with References, Bibliography, Related, Cites ...);
* ``mentions``: any other link to a note;
* ``embeds``: ``![[Note]]``;
* ``claims``: note -> experiment named by one of its claims (``claim`` = claim id; the
  multigraph key is ``claims:<claim id>``, so two claims naming one experiment stay two).

Links to attachments and links of a note to itself are not edges.

networkx is imported inside the functions: the ``show`` path never pays for it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kb.model import Note
from kb.resolve import ghost_key

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

EDGE_KINDS = ("cites", "mentions", "embeds", "claims")
GHOST = "ghost:"
EXPERIMENT = "experiment:"


def edge_kind(link) -> str:
    if link.kind == "embed":
        return "embeds"
    return "cites" if link.is_citation else "mentions"


def build_graph(notes: Iterable[Note]) -> nx.MultiDiGraph:
    """The graph of ``notes`` (their links already resolved, as ``Vault.notes()`` gives)."""
    import networkx as nx

    notes = [n for n in notes if "paperkb-export" not in n.frontmatter]  # paperkb's own exports: no nodes
    g = nx.MultiDiGraph()
    for note in notes:
        g.add_node(
            note.path,
            kind="note",
            label=note.title or note.name,
            title=note.title,
            citekey=note.citekey,
            year=note.year,
            tags=list(note.tags),
        )
    for note in notes:
        for link in note.links:
            kind = edge_kind(link)
            if link.resolved is not None:
                if link.resolved == note.path or link.resolved not in g:
                    continue  # a self-link, or an attachment
                g.add_edge(note.path, link.resolved, key=kind, kind=kind, line=link.line)
            elif link.is_citation and link.kind != "markdown" and ghost_key(link):
                key = ghost_key(link)
                node = GHOST + key
                if node not in g:
                    g.add_node(node, kind="ghost", label=key, citekey=key)
                g.add_edge(note.path, node, key=kind, kind=kind, line=link.line)
        for claim in note.claims:
            for exp in claim.experiments:
                node = EXPERIMENT + exp
                if node not in g:
                    g.add_node(node, kind="experiment", label=exp)
                g.add_edge(note.path, node, key=f"claims:{claim.id}", kind="claims", claim=claim.id, line=claim.line)
    return g


def build_graph_from_index(conn) -> nx.MultiDiGraph:
    """The same graph as ``build_graph(vault.notes())``, read from the index tables
    (``links``, ``tags`` and a few JSON fields of ``notes``) without loading every note."""
    import json

    import networkx as nx

    g = nx.MultiDiGraph()
    tags: dict[str, list[str]] = {}
    for path, tag in conn.execute("SELECT path, tag FROM tags ORDER BY rowid"):
        tags.setdefault(path, []).append(tag)
    claims: list[tuple[str, str]] = []
    rows = conn.execute(
        "SELECT path, json_extract(data, '$.title'), json_extract(data, '$.citekey'), "
        "json_extract(data, '$.year'), json_extract(data, '$.claims') FROM notes "
        "WHERE json_extract(data, '$.frontmatter.\"paperkb-export\"') IS NULL ORDER BY path"  # not exports
    )
    for path, title, citekey, year, claims_json in rows:
        name = path.rsplit("/", 1)[-1]
        name = name[:-3] if name.lower().endswith(".md") else name
        g.add_node(
            path,
            kind="note",
            label=title or name,
            title=title or "",
            citekey=citekey,
            year=year if isinstance(year, int) else None,
            tags=tags.get(path, []),
        )
        if claims_json and claims_json != "[]":
            claims.append((path, claims_json))
    for src, kind, is_citation, resolved, target, line in conn.execute(
        "SELECT src, kind, is_citation, resolved, target, line FROM links ORDER BY src, idx"
    ):
        edge = "embeds" if kind == "embed" else ("cites" if is_citation else "mentions")
        if resolved is not None:
            if resolved == src or resolved not in g:
                continue
            g.add_edge(src, resolved, key=edge, kind=edge, line=line)
        elif is_citation and kind != "markdown":
            key = target.strip()
            key = (key[:-3] if key.lower().endswith(".md") else key).lstrip("@").strip()
            if key:
                node = GHOST + key
                if node not in g:
                    g.add_node(node, kind="ghost", label=key, citekey=key)
                g.add_edge(src, node, key=edge, kind=edge, line=line)
    for path, claims_json in claims:
        for claim in json.loads(claims_json):
            for exp in claim.get("experiments") or []:
                node = EXPERIMENT + exp
                if node not in g:
                    g.add_node(node, kind="experiment", label=exp)
                g.add_edge(
                    path,
                    node,
                    key=f"claims:{claim.get('id')}",
                    kind="claims",
                    claim=claim.get("id"),
                    line=claim.get("line"),
                )
    return g


def _check(g, node: str) -> None:
    if node not in g:
        from kb.errors import NoteNotFound

        raise NoteNotFound(f"{node!r} is not in the graph")


def outgoing(g, node: str) -> list[tuple[str, str, dict]]:
    """``(target, kind, attrs)`` of every edge leaving ``node``."""
    _check(g, node)
    return [(v, k, d) for _, v, k, d in g.out_edges(node, keys=True, data=True)]


def backlinks(g, node: str) -> list[tuple[str, str, dict]]:
    """``(source, kind, attrs)`` of every edge arriving at ``node``."""
    _check(g, node)
    return [(u, k, d) for u, _, k, d in g.in_edges(node, keys=True, data=True)]


def citation_path(g, a: str, b: str) -> tuple[list[str], bool]:
    """The shortest chain of links from ``a`` to ``b``: ``(nodes, directed)``.

    Follows links in their direction first; when there is no such path, falls back to
    the undirected graph (``directed`` is then False). ``([], False)`` when ``a`` and
    ``b`` are not connected at all.
    """
    import networkx as nx

    _check(g, a)
    _check(g, b)
    try:
        return nx.shortest_path(g, a, b), True
    except nx.NetworkXNoPath:
        pass
    try:
        return nx.shortest_path(g.to_undirected(as_view=True), a, b), False
    except nx.NetworkXNoPath:
        return [], False


def neighbourhood(g, node: str, radius: int = 1):
    """The subgraph of nodes within ``radius`` links of ``node`` (either direction)."""
    import networkx as nx

    _check(g, node)
    near = nx.single_source_shortest_path_length(g.to_undirected(as_view=True), node, cutoff=radius)
    return g.subgraph(near).copy()


def _note_nodes(g) -> list[str]:
    return [n for n, kind in g.nodes(data="kind") if kind == "note"]


def orphans(g) -> list[str]:
    """Notes with no link to or from another note (ghosts and experiments don't count)."""
    out = []
    for n in _note_nodes(g):
        linked = any(g.nodes[v].get("kind") == "note" for v in g.successors(n)) or any(
            g.nodes[u].get("kind") == "note" for u in g.predecessors(n)
        )
        if not linked:
            out.append(n)
    return sorted(out)


def most_cited(g, n: int = 10) -> list[tuple[str, int]]:
    """The ``n`` notes or ghosts with the most citing notes (``cites`` edges), most first."""
    counts: Counter = Counter()
    for _, v, k in g.edges(data="kind"):
        if k == "cites":
            counts[v] += 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def pagerank(g, alpha: float = 0.85, tol: float = 1.0e-10, max_iter: int = 200) -> dict[str, float]:
    """PageRank over links between notes and ghosts (power iteration; parallel edges count
    once; dangling nodes spread their rank evenly). Pure Python: no scipy needed."""
    nodes = [n for n, kind in g.nodes(data="kind") if kind in ("note", "ghost")]
    if not nodes:
        return {}
    index = {n: i for i, n in enumerate(nodes)}
    out: list[list[int]] = [[] for _ in nodes]
    for u, v in set((u, v) for u, v in g.edges() if u in index and v in index and u != v):
        out[index[u]].append(index[v])
    size = len(nodes)
    rank = [1.0 / size] * size
    for _ in range(max_iter):
        dangling = sum(rank[i] for i in range(size) if not out[i])
        base = (1.0 - alpha) / size + alpha * dangling / size
        new = [base] * size
        for i, targets in enumerate(out):
            if targets:
                share = alpha * rank[i] / len(targets)
                for j in targets:
                    new[j] += share
        err = sum(abs(a - b) for a, b in zip(new, rank))
        rank = new
        if err < size * tol:
            break
    return {n: rank[i] for n, i in index.items()}


def summary(g, top: int = 5) -> dict[str, Any]:
    """Counts for a quick look at the graph."""
    import networkx as nx

    kinds = Counter(kind for _, kind in g.nodes(data="kind"))
    edges = Counter(k for _, _, k in g.edges(data="kind"))
    notes_and_ghosts = g.subgraph([n for n, kind in g.nodes(data="kind") if kind in ("note", "ghost")])
    components = nx.number_weakly_connected_components(notes_and_ghosts) if len(notes_and_ghosts) else 0
    return {
        "notes": kinds.get("note", 0),
        "ghosts": kinds.get("ghost", 0),
        "experiments": kinds.get("experiment", 0),
        "edges": {k: edges.get(k, 0) for k in EDGE_KINDS},
        "components": components,
        "most_cited": [{"node": n, "label": g.nodes[n].get("label", n), "citations": c} for n, c in most_cited(g, top)],
        "orphans": orphans(g),
    }


# --------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------
def scalar_copy(g):
    """A copy whose node and edge attributes are all scalars (for GraphML and GEXF):
    lists become comma-joined strings, None values are dropped."""
    import networkx as nx

    def clean(attrs: dict) -> dict:
        out = {}
        for k, v in attrs.items():
            if v is None:
                continue
            if isinstance(v, (list, tuple, set)):
                v = ", ".join(str(x) for x in v)
            elif isinstance(v, dict):
                import json

                v = json.dumps(v, ensure_ascii=False)
            elif not isinstance(v, (str, int, float, bool)):
                v = str(v)
            out[k] = v
        return out

    h = nx.MultiDiGraph()
    for n, d in g.nodes(data=True):
        h.add_node(n, **clean(d))
    for u, v, k, d in g.edges(keys=True, data=True):
        h.add_edge(u, v, key=k, **clean(d))
    return h


def to_json(g) -> dict:
    import networkx as nx

    return nx.node_link_data(g, edges="edges")


def _dot_quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(g) -> str:
    """Graphviz DOT; every id and label quoted and escaped."""
    lines = ["digraph paperkb {", "  node [shape=box];"]
    shapes = {"ghost": "ellipse", "experiment": "diamond"}
    for n, d in sorted(g.nodes(data=True)):
        attrs = f"label={_dot_quote(d.get('label', n))}"
        if d.get("kind") in shapes:
            attrs += f", shape={shapes[d['kind']]}"
            if d["kind"] == "ghost":
                attrs += ", style=dashed"
        lines.append(f"  {_dot_quote(n)} [{attrs}];")
    for u, v, k in sorted(g.edges(data="kind")):
        lines.append(f"  {_dot_quote(u)} -> {_dot_quote(v)} [label={_dot_quote(k)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_label(text: str) -> str:
    # Mermaid has no escape for '"' inside a quoted label: use its HTML entity form.
    escaped = (
        str(text)
        .replace("&", "#amp;")
        .replace('"', "#quot;")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
        .replace("\n", " ")
    )
    return f'"{escaped}"'


def to_mermaid(g) -> str:
    """A Mermaid flowchart; node ids are generated (n0, n1...), labels quoted."""
    ids = {n: f"n{i}" for i, n in enumerate(sorted(g.nodes))}
    lines = ["flowchart LR"]
    for n in sorted(g.nodes):
        d = g.nodes[n]
        label = _mermaid_label(d.get("label", n))
        kind = d.get("kind")
        if kind == "ghost":
            lines.append(f"  {ids[n]}({label})")
        elif kind == "experiment":
            lines.append(f"  {ids[n]}{{{label}}}")
        else:
            lines.append(f"  {ids[n]}[{label}]")
    arrows = {"cites": "-->", "mentions": "-.->", "embeds": "==>", "claims": "-->"}
    for u, v, k in sorted(g.edges(data="kind")):
        lines.append(f"  {ids[u]} {arrows.get(k, '-->')}|{k}| {ids[v]}")
    return "\n".join(lines) + "\n"


def write(g, fmt: str, out) -> None:
    """Write ``g`` in ``fmt`` (graphml, gexf, json, mermaid, dot) to a text stream."""
    import io
    import json

    import networkx as nx

    if fmt == "graphml":
        buf = io.BytesIO()
        nx.write_graphml(scalar_copy(g), buf)
        out.write(buf.getvalue().decode("utf-8"))
    elif fmt == "gexf":
        buf = io.BytesIO()
        nx.write_gexf(scalar_copy(g), buf)
        out.write(buf.getvalue().decode("utf-8"))
    elif fmt == "json":
        out.write(json.dumps(to_json(g), indent=2, ensure_ascii=False, default=str) + "\n")
    elif fmt == "mermaid":
        out.write(to_mermaid(g))
    elif fmt == "dot":
        out.write(to_dot(g))
    else:
        from kb.errors import PaperkbError

        raise PaperkbError(f"unknown graph format {fmt!r} (use graphml, gexf, json, mermaid, dot or summary)")
