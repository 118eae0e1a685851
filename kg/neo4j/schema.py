"""How a :class:`~kg.model.graph.KnowledgeGraph` is laid out in a Neo4j (Bolt) database,
and how a connection to one is opened.

Layout (shared by :mod:`kg.neo4j.sink` and :mod:`kg.neo4j.source`):

- nodes ``(:User)``, ``(:Item)``, ``(:Entity)`` keyed by an ``id`` property (the external id);
  text fields as list properties ``text_<field>``, the image reference as ``image``;
- a relation ``name`` as a relationship of type ``name`` (backtick-quoted, so
  ``film.film.directed_by`` stays as it is); when the name is not a plain identifier the
  relationship also carries ``relation: name``, so engines or tools that mangle types lose nothing;
  a relation named like an interaction type (``RATED``/``INTERACTED``, any case) is written as type
  ``RELATION`` with its ``relation`` property;
- interactions as ``(:User)-[:RATED {rating, timestamp}]->(:Item)`` (unknown values omitted).

Labels, relationship types and property keys are the only things formatted into query
text, always through :func:`quote_name`; every value travels as a query parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kg.errors import MMKGError, SourceConnectionError

LABELS: dict[str, str] = {"user": "User", "item": "Item", "entity": "Entity"}
ID_PROPERTY = "id"
TEXT_PREFIX = "text_"
IMAGE_PROPERTY = "image"
RELATION_PROPERTY = "relation"
INTERACTION_TYPE = "RATED"
INTERACTION_TYPES: tuple[str, ...] = ("RATED", "INTERACTED")
RATING_PROPERTY = "rating"
TIMESTAMP_PROPERTY = "timestamp"
SEQ_PROPERTY = "seq"
"""Set only on repeated interactions of one (user, item) pair, to keep each one apart."""
RESERVED_RELATION_TYPE = "RELATION"
CONNECTION_TIMEOUT_S = 5.0

_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def quote_name(name: str) -> str:
    """A label, relationship type or property key as a Cypher identifier: ``a`b`` -> ```a``b```."""
    if not name:
        raise MMKGError("empty Neo4j label / relationship type / property name")
    return "`" + name.replace("`", "``") + "`"


def relationship_type(relation: str) -> tuple[str, bool]:
    """``(type, store_relation_property)`` used to write relation ``relation``."""
    if relation.upper() in INTERACTION_TYPES:
        return RESERVED_RELATION_TYPE, True
    return relation, _PLAIN.match(relation) is None


@dataclass(frozen=True)
class Neo4jNames:
    """The labels, types and property keys a reader looks for (see ``kg.sources.mapping.Mapping``)."""

    user_label: str = LABELS["user"]
    item_label: str = LABELS["item"]
    interaction_types: tuple[str, ...] = INTERACTION_TYPES
    rating_property: str = RATING_PROPERTY
    timestamp_property: str = TIMESTAMP_PROPERTY
    id_property: str = ID_PROPERTY

    @staticmethod
    def from_mapping(mapping: Any | None) -> Neo4jNames:
        """Read the ``neo4j_*`` attributes of a mapping object; missing or ``None`` ones keep the default."""
        if mapping is None:
            return Neo4jNames()
        defaults = Neo4jNames()

        def get(attr: str, default: Any) -> Any:
            value = getattr(mapping, f"neo4j_{attr}", None)
            return default if value is None else value

        types = get("interaction_types", defaults.interaction_types)
        if isinstance(types, str):
            types = (types,)
        return Neo4jNames(
            user_label=str(get("user_label", defaults.user_label)),
            item_label=str(get("item_label", defaults.item_label)),
            interaction_types=tuple(str(t) for t in types),
            rating_property=str(get("rating_property", defaults.rating_property)),
            timestamp_property=str(get("timestamp_property", defaults.timestamp_property)),
            id_property=str(get("id_property", defaults.id_property)),
        )


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "Errno 111" in text or "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "connection timed out"
    if "Name or service not known" in text or "Errno -2" in text or "Errno -3" in text:
        return "unknown host"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


@contextmanager
def translate_errors(uri: str, user: str, database: str | None) -> Iterator[None]:
    """Turn the driver's connection, credential and missing-database errors into one-line
    :class:`SourceConnectionError` s (``from None``: no driver traceback)."""
    from neo4j.exceptions import AuthError, ClientError, ConfigurationError, ServiceUnavailable, SessionExpired

    try:
        yield
    except AuthError:
        raise SourceConnectionError(f"Neo4j at {uri} refused the credentials for user {user!r}") from None
    except (ServiceUnavailable, SessionExpired) as exc:
        raise SourceConnectionError(f"cannot reach Neo4j at {uri}: {_reason(exc)}") from None
    except ConfigurationError as exc:
        raise SourceConnectionError(f"cannot connect to Neo4j at {uri}: {_reason(exc)}") from None
    except ClientError as exc:
        if exc.code == "Neo.ClientError.Database.DatabaseNotFound":
            raise SourceConnectionError(f"Neo4j at {uri} has no database {database!r}") from None
        if exc.code and exc.code.startswith("Neo.ClientError.Security"):
            raise SourceConnectionError(f"Neo4j at {uri} refused user {user!r}: {exc.message}") from None
        raise


@contextmanager
def open_driver(uri: str, user: str, password: str, database: str | None = None) -> Iterator[Any]:
    """A connected ``neo4j.Driver`` (closed on exit), checked by running ``RETURN 1`` on ``database``.

    Errors raised by the driver inside the ``with`` block are translated too. Raises
    :class:`SourceConnectionError` (one line) for an unreachable server, refused
    credentials, an unknown database or a malformed URI.
    """
    import neo4j
    from neo4j.exceptions import ConfigurationError

    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme not in _SCHEMES:
        raise SourceConnectionError(f"invalid Neo4j URI {uri!r}: expected bolt://host:port or neo4j://host:port")
    try:
        driver = neo4j.GraphDatabase.driver(
            uri, auth=(user, password), connection_timeout=CONNECTION_TIMEOUT_S, max_transaction_retry_time=5.0
        )
    except (ValueError, ConfigurationError) as exc:
        raise SourceConnectionError(f"invalid Neo4j URI {uri!r}: {_reason(exc)}") from None
    try:
        with translate_errors(uri, user, database):
            with driver.session(database=database) as session:
                session.run("RETURN 1").consume()
            yield driver
    finally:
        driver.close()
