"""What an ingest read, kept and left out: returned by :func:`kg.sources.rdf_source.read_rdf`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FileReport:
    """Per-file counts."""

    path: str
    format: str
    triples: int = 0
    seconds: float = 0.0


@dataclass
class IngestReport:
    """Counts over all files of one ingest. ``problems`` holds the first few offending ids."""

    files: list[FileReport] = field(default_factory=list)
    triples: int = 0
    """Triples (quads) read, duplicates included."""
    type_triples: int = 0
    relation_triples: int = 0
    """Triples that became relation edges (before deduplication)."""
    text_values: int = 0
    images: int = 0
    ignored_literals: int = 0
    """Literal-valued triples no mapping rule uses (e.g. a release year)."""
    dropped_predicates: int = 0
    """Triples whose predicate is in ``drop_predicates``."""
    interactions: int = 0
    """Interactions added to the KG (reified and direct)."""
    interactions_with_rating: int = 0
    interactions_with_timestamp: int = 0
    interactions_unknown_user: int = 0
    """Interactions skipped: no user, or the user end is a literal or a node typed as an item."""
    interactions_unknown_item: int = 0
    """Interactions skipped: no item, or the item end is a literal or a node typed as a user."""
    bad_values: int = 0
    """Ratings / timestamps that are not numbers or dates (the interaction is kept without them)."""
    type_conflicts: int = 0
    """Nodes typed (or used) both as a user and as an item; they are kept as users."""
    problems: list[str] = field(default_factory=list)

    MAX_PROBLEMS = 5

    def problem(self, message: str) -> None:
        if len(self.problems) < self.MAX_PROBLEMS:
            self.problems.append(message)

    @property
    def skipped_interactions(self) -> int:
        return self.interactions_unknown_user + self.interactions_unknown_item

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "files"}
        out["files"] = [f.__dict__.copy() for f in self.files]
        return out

    def format(self) -> str:
        """A short human-readable summary."""
        lines = [
            f"read {self.triples:,} triples from {len(self.files)} file(s)",
            f"  relation triples {self.relation_triples:,}, type triples {self.type_triples:,}, "
            f"text values {self.text_values:,}, images {self.images:,}",
            f"  ignored literals {self.ignored_literals:,}, dropped predicates {self.dropped_predicates:,}",
            f"  interactions {self.interactions:,} (rating {self.interactions_with_rating:,}, "
            f"timestamp {self.interactions_with_timestamp:,})",
        ]
        if self.skipped_interactions or self.bad_values or self.type_conflicts:
            lines.append(
                f"  skipped interactions: unknown user {self.interactions_unknown_user:,}, unknown item "
                f"{self.interactions_unknown_item:,}; bad values {self.bad_values:,}; "
                f"type conflicts {self.type_conflicts:,}"
            )
            lines.extend(f"    {p}" for p in self.problems)
        for f in self.files:
            lines.append(f"  {f.path} ({f.format}): {f.triples:,} triples in {f.seconds:.2f} s")
        return "\n".join(lines)
