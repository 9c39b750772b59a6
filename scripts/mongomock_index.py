"""Give mongomock the lookups MongoDB answers from an index.

mongomock answers every query by copying and testing every document of the collection. At 10,000
items one `GET /item/{id}/files` then costs ~100 ms where MongoDB, using Girder's `itemId` index,
costs a few. This module makes the test server answer an `_id` lookup, and an equality or `$in`
on `folderId`, `itemId` or `parentId` (fields Girder indexes), from maps kept beside the documents.

Only the set of documents tested changes: every candidate is still tested, in the collection's
insertion order, so answers are the same as a full scan's. The test is mongomock's own
`filter_applies`, but for a filter on the indexed field alone wanting ObjectIds: a document whose
field is one of them matches (an ObjectId equals only the same ObjectId), tested with one set
lookup. mongomock's `$in` compares each document with each wanted value: the files of a page of 100
items cost 10,000 comparisons, where MongoDB uses its index.
Any other filter shape scans as before.

Documents change in three ways, each kept in step with the maps:
- inserted or put back (`CollectionStore.__setitem__`) and deleted (`__delitem__`);
- changed in place by `Collection._update`, which mutates the documents `_iter_documents` yields:
  those yielded during an update are indexed again when it ends;
- dropped (`CollectionStore.drop`).
"""

import threading

from bson import ObjectId

INDEXED_FIELDS = ('folderId', 'itemId', 'parentId')

_recording = threading.local()


class _StoreIndex:
    """Per-collection maps: field -> value -> ids, each id's insertion order and indexed values."""

    def __init__(self):
        self.lock = threading.RLock()
        self.clear()

    def clear(self):
        self.by_field = {field: {} for field in INDEXED_FIELDS}
        # ids whose value cannot be a dict key (a list, a sub-document): candidates for every query
        self.unkeyed = {field: set() for field in INDEXED_FIELDS}
        self.values = {}
        self.order = {}
        self.next_order = 0

    def add(self, key, doc):
        with self.lock:
            self.remove(key)
            if key not in self.order:
                self.order[key] = self.next_order
                self.next_order += 1
            held = {}
            for field in INDEXED_FIELDS:
                value = doc.get(field)
                try:
                    self.by_field[field].setdefault(value, set()).add(key)
                    held[field] = (True, value)
                except TypeError:
                    self.unkeyed[field].add(key)
                    held[field] = (False, None)
            self.values[key] = held

    def remove(self, key, forget_order=False):
        with self.lock:
            held = self.values.pop(key, None)
            if held is not None:
                for field, (keyed, value) in held.items():
                    if keyed:
                        ids = self.by_field[field].get(value)
                        if ids is not None:
                            ids.discard(key)
                            if not ids:
                                del self.by_field[field][value]
                    else:
                        self.unkeyed[field].discard(key)
            if forget_order:
                self.order.pop(key, None)

    def candidates(self, field, values):
        """Ids whose `field` may equal one of `values`, in insertion order."""
        with self.lock:
            found = set(self.unkeyed[field])
            for value in values:
                found |= self.by_field[field].get(value, set())
            return sorted(found, key=lambda key: self.order.get(key, -1))


def _index_of(store):
    index = store.__dict__.get('_girder_mount_index')
    if index is None:
        index = _StoreIndex()
        store.__dict__['_girder_mount_index'] = index
        for key, doc in store._documents.items():
            index.add(key, doc)
    return index


def _hashable(value):
    try:
        hash(value)
    except TypeError:
        return False
    return not isinstance(value, (dict, list))


def _plan(filter):
    """('_id', [ids]) or (field, [values]) when the filter can use a map, else None."""
    if not isinstance(filter, dict):
        return None
    for field in ('_id',) + INDEXED_FIELDS:
        if field not in filter:
            continue
        wanted = filter[field]
        if isinstance(wanted, dict):
            if list(wanted) != ['$in'] or not isinstance(wanted['$in'], (list, tuple)):
                continue
            values = list(wanted['$in'])
        else:
            values = [wanted]
        if all(_hashable(value) for value in values):
            return field, values
    return None


def _wanted_ids(filter, values):
    """The ObjectIds a filter on the indexed field alone wants, else None."""
    if len(filter) == 1 and all(type(value) is ObjectId for value in values):
        return frozenset(values)
    return None


def _is_one_of(value, wanted):
    return wanted is not None and type(value) is ObjectId and value in wanted


def install():
    import mongomock.collection
    import mongomock.filtering
    import mongomock.store

    store_class = mongomock.store.CollectionStore
    collection_class = mongomock.collection.Collection
    filter_applies = mongomock.filtering.filter_applies

    original_setitem = store_class.__setitem__
    original_delitem = store_class.__delitem__
    original_drop = store_class.drop
    original_iter = collection_class._iter_documents
    original_update = collection_class._update

    def setitem(self, key, val):
        original_setitem(self, key, val)
        _index_of(self).add(key, val)

    def delitem(self, key):
        original_delitem(self, key)
        _index_of(self).remove(key, forget_order=True)

    def drop(self):
        original_drop(self)
        _index_of(self).clear()

    def iter_documents(self, filter):
        store = self._store
        plan = _plan(filter)
        if plan is None or store.is_empty:
            docs = original_iter(self, filter)
        else:
            field, values = plan
            documents = store._documents
            if field == '_id':
                index = _index_of(store)
                with index.lock:
                    keys = sorted((v for v in set(values) if v in documents),
                                  key=lambda key: index.order.get(key, -1))
            else:
                keys = _index_of(store).candidates(field, values)
            picked = [documents[key] for key in keys if key in documents]
            wanted = _wanted_ids(filter, values)
            docs = (doc for doc in picked
                    if _is_one_of(doc.get(field), wanted) or filter_applies(filter, doc))
        touched = getattr(_recording, 'stores', None)
        if touched is None:
            return docs
        return _recorded(docs, store, touched)

    def _recorded(docs, store, touched):
        for doc in docs:
            touched.append((store, doc.get('_id')))
            yield doc

    def update(self, spec, document, *args, **kwargs):
        outer = getattr(_recording, 'stores', None)
        touched = []
        _recording.stores = touched
        try:
            return original_update(self, spec, document, *args, **kwargs)
        finally:
            _recording.stores = outer
            for store, key in touched:
                doc = store._documents.get(key)
                if doc is not None:
                    _index_of(store).add(key, doc)
            if outer is not None:
                outer.extend(touched)

    store_class.__setitem__ = setitem
    store_class.__delitem__ = delitem
    store_class.drop = drop
    collection_class._iter_documents = iter_documents
    collection_class._update = update
