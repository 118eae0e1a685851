"""Collect an RDF stream's relevant triples as interned ids, then assemble them into a KG.

:class:`TripleCollector` is fed by :mod:`kg.sources.rdf_source` (one call per file) and keeps only
compact arrays: relation candidates ``(src, predicate, dst)`` as int64 arrays over interned
node ids, plus small tables for types, interaction fields, text and images. :meth:`finish`
classifies every node once all types are known and writes nodes, relations, interactions,
text and images. Type precedence: a type already in the KG (it cannot change) > an explicit
``rdf:type`` of a user / item class > the node's role in an interaction; a node both a user
and an item is a conflict (kept as a user). A node exists only if it is a user or an item, an
end of a relation, or has text / an image: ``rdf:type`` of another class alone creates nothing.
Interaction nodes (and what only they point to, like rating nodes) never become nodes.
"""

from __future__ import annotations

from array import array
from datetime import datetime, timezone
from urllib.parse import unquote, urlparse

import numpy as np

from kg.model.graph import NODE_TYPES, KnowledgeGraph
from kg.sources.ingest_report import IngestReport
from kg.sources.mapping import RDF_TYPE, Mapping

USER, ITEM, INTER = 1, 2, 4
_TYPE, _I_USER, _I_ITEM, _I_RATING, _I_TS, _R_VALUE, _DIRECT, _TEXT, _IMAGE, _DROP = range(10)
_U, _I, _E = 0, 1, 2  # indices into NODE_TYPES


def _local_name(iri: str) -> str:
    name = iri[max(iri.rfind("#"), iri.rfind("/")) + 1:]
    return name or iri


def _image_ref(value: str) -> str:
    return unquote(urlparse(value).path) if value.startswith("file:") else value


def _number(value: str, timestamp: bool) -> float | None:
    try:
        return float(value)
    except ValueError:
        if not timestamp:
            return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


class TripleCollector:
    """Accumulates one ingest's triples as interned ids; :meth:`finish` writes them into a KG."""

    def __init__(self, m: Mapping) -> None:
        self.m = m
        self.bprefix = "_:"
        self.ids: dict[str, int] = {}
        self.terms: list[str] = []
        self.src, self.pid, self.dst = array("q"), array("q"), array("q")
        self.preds: dict[str, int] = {}
        self.roles: dict[int, int] = {}
        self.inter: dict[int, list] = {}
        self.rating_values: dict[int, str] = {}
        self.direct: list[tuple[int, int]] = []
        self.text: list[tuple[int, str, str]] = []
        self.images: list[tuple[int, str]] = []
        self.triples = self.ignored = self.dropped = self.type_triples = 0
        self.class_role = {c: USER for c in m.user_classes}
        for c in m.item_classes:
            self.class_role[c] = self.class_role.get(c, 0) | ITEM
        self.class_role[m.interaction_class] = INTER
        act: dict[str, tuple[int, str]] = {p: (_TEXT, f) for p, f in m.text_predicates.items()}
        act.update({p: (_IMAGE, "") for p in m.image_predicates})
        act.update({p: (_DIRECT, "") for p in m.direct_interactions})
        act.update({m.interaction_user: (_I_USER, ""), m.interaction_item: (_I_ITEM, ""),
                    m.interaction_rating: (_I_RATING, ""), m.interaction_timestamp: (_I_TS, ""),
                    m.interaction_rating_value: (_R_VALUE, ""), RDF_TYPE: (_TYPE, "")})
        act.update({p: (_DROP, "") for p in m.drop_predicates})
        self.actions = act

    def intern(self, term: str) -> int:
        i = self.ids.get(term)
        if i is None:
            i = self.ids[term] = len(self.terms)
            self.terms.append(term)
        return i

    def relation(self, s: str, p: str, o: str) -> None:
        self.src.append(self.intern(s))
        self.pid.append(self.preds.setdefault(p, len(self.preds)))
        self.dst.append(self.intern(o))

    def special(self, act: tuple[int, str], s: str, p: str, o: str, is_lit: bool) -> None:
        code = act[0]
        if code == _TYPE:
            self.type_triples += 1
            role = 0 if is_lit else self.class_role.get(o, 0)
            if role:
                si = self.intern(s)
                self.roles[si] = self.roles.get(si, 0) | role
        elif code <= _I_TS:  # an interaction field
            si = self.intern(s)
            slots = self.inter.get(si)
            if slots is None:
                slots = self.inter[si] = [None, None, None, None]
            if is_lit:
                slots[code - _I_USER] = o
            else:  # also kept as a relation, in case the subject is not an interaction node
                slots[code - _I_USER] = oi = self.intern(o)
                self.src.append(si)
                self.pid.append(self.preds.setdefault(p, len(self.preds)))
                self.dst.append(oi)
        elif code == _R_VALUE and is_lit:
            self.rating_values[self.intern(s)] = o
        elif code == _DIRECT and not is_lit:
            self.direct.append((self.intern(s), self.intern(o)))
        elif code == _TEXT and is_lit:
            self.text.append((self.intern(s), act[1], o))
        elif code == _IMAGE:
            self.images.append((self.intern(s), _image_ref(o)))
        elif code == _DROP:
            self.dropped += 1
        elif is_lit:
            self.ignored += 1
        else:
            self.relation(s, p, o)

    def finish(self, kg: KnowledgeGraph, report: IngestReport) -> None:
        """Classify the collected nodes and add everything to ``kg``; fill ``report``'s counts."""
        m, terms, n = self.m, self.terms, len(self.terms)
        report.triples, report.type_triples, report.dropped_predicates = self.triples, self.type_triples, self.dropped
        ignored = self.ignored
        excluded = np.zeros(n, dtype=bool)
        inter_nodes = [t for t, r in self.roles.items() if r & INTER]
        excluded[inter_nodes] = True
        cand = []
        for t in inter_nodes:
            u, i, rating, ts = self.inter.get(t) or (None, None, None, None)
            if not isinstance(u, int):
                report.interactions_unknown_user += 1
                report.problem(f"{terms[t]}: {'no' if u is None else 'a literal'} {_local_name(m.interaction_user)}")
            elif not isinstance(i, int):
                report.interactions_unknown_item += 1
                report.problem(f"{terms[t]}: {'no' if i is None else 'a literal'} {_local_name(m.interaction_item)}")
            else:
                cand.append((t, u, i, rating, ts))
        inter_set = set(inter_nodes)
        for t, slots in self.inter.items():  # literal "interaction fields" of ordinary nodes
            if t not in inter_set:
                ignored += sum(isinstance(v, str) for v in slots)
        role = self._roles(kg, report, cand, n)
        used = np.zeros(n, dtype=bool)
        src, dst, pid = (np.array(a, dtype=np.int64) for a in (self.src, self.dst, self.pid))
        keep = ~excluded[src] & ~excluded[dst]
        src, dst, pid = src[keep], dst[keep], pid[keep]
        used[src] = used[dst] = True
        used[[t for t, r in self.roles.items() if r & (USER | ITEM)]] = True
        used[[c[1] for c in cand] + [c[2] for c in cand]] = True
        used[[d for pair in self.direct for d in pair]] = True
        used[[t for t, _, _ in self.text] + [t for t, _ in self.images]] = True
        used[excluded] = False
        index_list = [-1] * n
        roles = role.tolist()
        for t in np.flatnonzero(used).tolist():
            index_list[t] = kg.add_node(NODE_TYPES[roles[t]], terms[t])
        self._relations(kg, report, role, np.array(index_list, dtype=np.int64), src, pid, dst)
        for t, u, i, rating, ts in cand:
            self._interaction(kg, report, roles, t, u, i, rating, ts)
        for u, i in self.direct:
            self._interaction(kg, report, roles, None, u, i, None, None)
        used_ratings = {c[3] for c in cand if isinstance(c[3], int)}
        used_list = used.tolist()
        ignored += sum(1 for t in self.rating_values if t not in used_ratings)
        for t, field, value in self.text:
            if used_list[t]:
                kg.add_text(NODE_TYPES[roles[t]], terms[t], field, value)
                report.text_values += 1
            else:
                ignored += 1
        for t, ref in self.images:
            if used_list[t]:
                kg.set_image(NODE_TYPES[roles[t]], terms[t], ref)
                report.images += 1
        report.ignored_literals = ignored

    def _roles(self, kg: KnowledgeGraph, report: IngestReport, cand: list, n: int) -> np.ndarray:
        role = np.full(n, _E, dtype=np.int8)
        users = {c[1] for c in cand} | {u for u, _ in self.direct}
        items = {c[2] for c in cand} | {i for _, i in self.direct}
        role[list(items)] = _I
        role[list(users)] = _U
        explicit = {t: r & (USER | ITEM) for t, r in self.roles.items() if r & (USER | ITEM)}
        for t in users & items:
            if t not in explicit:
                self._conflict(report, t, "used both as a user and as an item")
        for t, r in explicit.items():
            role[t] = _I if r == ITEM else _U
            if r == USER | ITEM:
                self._conflict(report, t, "typed both as a user and as an item")
        if any(kg.num_nodes(t) for t in NODE_TYPES):
            for t, term in enumerate(self.terms):
                known = kg.node_type_of(term)
                if known is not None and NODE_TYPES.index(known) != role[t]:
                    if t in explicit:
                        self._conflict(report, t, f"typed as {NODE_TYPES[role[t]]} but already a {known} in the KG")
                    role[t] = NODE_TYPES.index(known)
        return role

    def _conflict(self, report: IngestReport, t: int, what: str) -> None:
        report.type_conflicts += 1
        report.problem(f"{self.terms[t]}: {what}")

    def _relations(self, kg: KnowledgeGraph, report: IngestReport, role: np.ndarray, index: np.ndarray,
                   src: np.ndarray, pid: np.ndarray, dst: np.ndarray) -> None:
        report.relation_triples = int(src.shape[0])
        if not src.shape[0]:
            return
        key = (pid * 3 + role[src]) * 3 + role[dst]
        order = np.argsort(key, kind="stable")
        keys, starts = np.unique(key[order], return_index=True)
        bounds = np.append(starts, order.shape[0])
        iris = list(self.preds)
        names: dict[int, str] = {}
        for g, k in enumerate(keys.tolist()):
            p, rs, rd = k // 9, (k // 3) % 3, k % 3
            if p not in names:
                names[p] = _relation_name(kg, iris[p])
            sel = order[bounds[g]:bounds[g + 1]]
            kg.add_triples((NODE_TYPES[rs], names[p], NODE_TYPES[rd]), index[src[sel]], index[dst[sel]])

    def _interaction(self, kg: KnowledgeGraph, report: IngestReport, role: list[int], node: int | None,
                     u: int, i: int, rating, ts) -> None:
        what = (node, u, i)
        if role[u] != _U:
            report.interactions_unknown_user += 1
            report.problem(f"{self._what(*what)}: user end {self.terms[u]} is a{'n' if role[u] else ''} "
                           f"{NODE_TYPES[role[u]]}")
            return
        if role[i] != _I:
            report.interactions_unknown_item += 1
            report.problem(f"{self._what(*what)}: item end {self.terms[i]} is a {NODE_TYPES[role[i]]}")
            return
        r = self._value(report, what, "rating", rating, False)
        t = self._value(report, what, "timestamp", ts, True)
        kg.add_interaction(self.terms[u], self.terms[i], r, t)
        report.interactions += 1
        report.interactions_with_rating += r is not None
        report.interactions_with_timestamp += t is not None

    def _what(self, node: int | None, u: int, i: int) -> str:
        return self.terms[node] if node is not None else f"{self.terms[u]} -> {self.terms[i]}"

    def _value(self, report: IngestReport, what: tuple, name: str, value, timestamp: bool) -> float | None:
        if value is None:
            return None
        if isinstance(value, int):  # a node: a rating node holds the number in ratingValue
            lexical = self.rating_values.get(value) if not timestamp else None
        else:
            lexical = value
        number = None if lexical is None else _number(lexical, timestamp)
        if number is None:
            report.bad_values += 1
            shown = lexical if lexical is not None else self.terms[value]
            report.problem(f"{self._what(*what)}: {name} {shown!r} is not "
                           f"{'a date or number' if timestamp else 'a number'}")
        return number


def _relation_name(kg: KnowledgeGraph, iri: str) -> str:
    """The predicate's local name, suffixed _2, _3... when another IRI already has that name."""
    base = name = _local_name(iri)
    k = 2
    while kg.relation_iris.get(name, iri) != iri:
        name, k = f"{base}_{k}", k + 1
    kg.relation_iris[name] = iri
    return name
