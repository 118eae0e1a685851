"""Users, items and entities named the way people type them: the full external id, or its last path segment
(``196`` for ``http://mmkgrec.dev/movielens/user/196``)."""

from __future__ import annotations

from kg.errors import MMKGError
from kg.model.graph import KnowledgeGraph


def resolve_id(kg: KnowledgeGraph, ntype: str, text: str) -> int:
    """The index of the ``ntype`` node whose external id is ``text`` or ends with ``/text`` / ``#text``.

    Raises :class:`MMKGError` (``unknown user id '...'``) when none matches, or when several end with ``text``.
    """
    if kg.has_node(ntype, text):
        return kg.index_of(ntype, text)
    found = [i for i, ext in enumerate(kg.ids(ntype)) if ext.endswith(("/" + text, "#" + text))] if text else []
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise MMKGError(f"{ntype} id {text!r} is ambiguous ({len(found)} {ntype}s end with it); give the full id")
    raise MMKGError(f"unknown {ntype} id {text!r}")
