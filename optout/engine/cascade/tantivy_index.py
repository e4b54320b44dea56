"""A Tantivy search index: the subject's documents are deleted by term (a raw-tokenized field
holding an identifier) and verified with a term query. An OpenSearch target would be the same
three calls over HTTP."""

from __future__ import annotations

import tantivy

from optout.connectors.target import Staged
from optout.engine.cascade.base import CascadeTarget
from optout.engine.cascade.spec import CascadeError
from optout.model.redaction import one_line


class TantivyTarget(CascadeTarget):
    """Deletes the subject's documents from one index."""

    def _index(self) -> tantivy.Index:
        try:
            return tantivy.Index.open(self.spec.path)
        except (ValueError, OSError) as exc:
            raise CascadeError(f"{self.spec.name}: cannot open the index at {self.spec.path}: "
                               f"{one_line(exc)}") from exc

    def _count(self, index: tantivy.Index) -> int:
        index.reload()
        try:
            query = tantivy.Query.term_query(index.schema, self.spec.field,
                                             self.value(self.spec.identifier))
        except ValueError as exc:
            raise CascadeError(f"{self.spec.name}: {one_line(exc)}") from exc
        return index.searcher().search(query, 1).count

    def prepare(self) -> Staged:
        n = self._count(self._index())
        return Staged(rows_before=n, rows_changed=n)

    def commit(self, staged: Staged) -> str:
        index = self._index()
        try:
            writer = index.writer()
        except ValueError as exc:
            raise CascadeError(f"{self.spec.name}: the index is locked by a writer: {one_line(exc)}") from exc
        try:
            writer.delete_documents_by_term(self.spec.field, self.value(self.spec.identifier))
            writer.commit()
        finally:
            writer.wait_merging_threads()
        return f"deleted {staged.rows_changed} documents"

    def residue(self) -> int:
        return self._count(self._index())
