"""A Tantivy search index: the subject's documents are deleted by term (a raw-tokenized field
holding an identifier) and verified with a term query. An OpenSearch target would be the same
three calls over HTTP.

A deletion only marks the documents deleted in their segments; their bytes stay until Tantivy
merges the segment, which its Python binding cannot ask for. So the physical step rewrites the
index's documents into new segments (every field is stored, so every document is read back
whole) and collects the files no segment uses; the check is the index's own state: no segment
carries a deleted document and the folder holds no file of a segment that is gone. (Its term
dictionary and document store are compressed: a raw byte search would be blind.)"""

from __future__ import annotations

import json
import os
import re

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

    # -- physical erasure ----------------------------------------------------------------------

    def _meta(self) -> dict:
        try:
            with open(os.path.join(self.spec.path, "meta.json"), encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError) as exc:
            raise CascadeError(f"{self.spec.name}: cannot read the index's meta.json: "
                               f"{one_line(exc)}") from exc

    def physical(self) -> str:
        from optout.model.faults import fault

        meta = self._meta()
        if not any(seg.get("deletes") for seg in meta["segments"]):
            return "no segment holds a deleted document"
        unstored = [f["name"] for f in meta["schema"] if not f["options"].get("stored")]
        if unstored:
            return (f"segments with deleted documents kept: the field(s) {', '.join(unstored)} "
                    "are not stored, so the documents cannot be rewritten")
        index = self._index()
        index.reload()
        searcher = index.searcher()
        hits = searcher.search(tantivy.Query.all_query(), max(1, searcher.num_docs)).hits
        docs = [searcher.doc(address) for _, address in hits]
        try:
            writer = index.writer()
        except ValueError as exc:
            raise CascadeError(f"{self.spec.name}: the index is locked by a writer: "
                               f"{one_line(exc)}") from exc
        try:
            writer.delete_all_documents()
            for doc in docs:
                writer.add_document(doc)
            fault("physical-tantivy")  # the rewrite staged, not committed: the old segments hold
            writer.commit()
            writer.garbage_collect_files()
        finally:
            writer.wait_merging_threads()
        return (f"{len(docs)} documents rewritten into new segments; files of dropped "
                "segments collected")

    def forensic(self) -> tuple[int, str]:
        meta = self._meta()
        live = {seg["segment_id"].replace("-", "") for seg in meta["segments"]}
        tombstoned = sum((seg.get("deletes") or {}).get("num_deleted_docs", 0)
                         for seg in meta["segments"])
        stale = [f for f in os.listdir(self.spec.path)
                 if _SEGMENT_FILE.match(f) and f.split(".")[0] not in live]
        return tombstoned + len(stale), (
            f"index state read: {len(live)} segments, {tombstoned} deleted documents kept in "
            f"them, {len(stale)} files of dropped segments")


_SEGMENT_FILE = re.compile(r"^[0-9a-f]{32}\.")
