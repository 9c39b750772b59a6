"""Random operations on mongomock with scripts/mongomock_index.py installed: every query must answer
what a full scan answers, in the same order.

Usage: .venv/bin/python test/tools/mongomock_index_check.py SEED [OPERATIONS]
Prints one JSON line: {"operations": N, "queries": N, "indexedQueries": N}; exits 1 on the first
difference, printing it.
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'scripts'))

import mongomock  # noqa: E402
import mongomock.filtering  # noqa: E402
import mongomock_index  # noqa: E402
from bson import ObjectId  # noqa: E402
from pymongo import ReturnDocument  # noqa: E402
from pymongo.errors import DuplicateKeyError  # noqa: E402

mongomock_index.install()


def main():
    seed = int(sys.argv[1])
    operations = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    rng = random.Random(seed)
    collection = mongomock.MongoClient().db.items
    collection.create_index('name', unique=True)
    parents = [ObjectId() for _ in range(6)]
    ids = []
    names = iter(range(10 ** 9))
    stats = {'operations': operations, 'queries': 0, 'indexedQueries': 0}

    def value():
        pick = rng.random()
        if pick < 0.8:
            return rng.choice(parents)
        if pick < 0.9:
            return None
        return [rng.choice(parents)]   # an array field: MongoDB matches its elements

    def document():
        doc = {'name': 'n%d' % next(names), 'size': rng.randrange(100)}
        for field in ('folderId', 'itemId', 'parentId'):
            if rng.random() < 0.9:
                doc[field] = value()
        return doc

    def some_filter():
        field = rng.choice(('folderId', 'itemId', 'parentId', '_id', 'size'))
        if field == '_id':
            pool = ids + [ObjectId()]
            wanted = rng.choice(pool) if pool else ObjectId()
            shapes = [wanted, {'$in': rng.sample(pool, min(len(pool), 3))}]
        elif field == 'size':
            shapes = [{'$lt': 50}]
        else:
            wanted = rng.choice(parents + [None])
            shapes = [wanted, {'$in': rng.sample(parents, 2)}, {'$ne': wanted}]
        spec = {field: rng.choice(shapes)}
        if rng.random() < 0.3:
            spec['size'] = {'$gte': rng.randrange(100)}
        return spec

    def scanned(spec):
        docs = collection._store._documents.values()
        return [doc for doc in docs if mongomock.filtering.filter_applies(spec, doc)]

    def check(spec):
        stats['queries'] += 1
        if mongomock_index._plan(spec) is not None:
            stats['indexedQueries'] += 1
        got = list(collection.find(spec))
        want = scanned(spec)
        if got != want:
            print('difference for %r after %d queries:\n got  %r\n want %r' % (
                spec, stats['queries'], got, want))
            sys.exit(1)
        if collection.count_documents(spec) != len(want):
            print('count_documents differs for %r' % (spec,))
            sys.exit(1)

    for _ in range(operations):
        op = rng.random()
        if op < 0.25:
            ids.append(collection.insert_one(document()).inserted_id)
        elif op < 0.35:
            collection.update_one(some_filter(), {'$set': {rng.choice(('folderId', 'itemId', 'parentId')): value()}})
        elif op < 0.40:
            collection.update_many(some_filter(), {'$set': {'parentId': value()}, '$inc': {'size': 1}})
        elif op < 0.45:
            collection.update_one(some_filter(), {'$unset': {'folderId': ''}})
        elif op < 0.50 and ids:
            replacement = document()
            collection.replace_one({'_id': rng.choice(ids)}, replacement)
        elif op < 0.55:
            collection.find_one_and_update(some_filter(), {'$set': {'itemId': value()}},
                                           return_document=ReturnDocument.AFTER)
        elif op < 0.60:
            collection.update_one({'_id': ObjectId()}, {'$set': {'folderId': value(), 'name': 'u%d' % next(names)}},
                                  upsert=True)
        elif op < 0.65 and len(ids) > 1:
            # a change refused by the unique index is rolled back
            first, second = rng.sample(ids, 2)
            other = collection.find_one({'_id': second})
            if other is not None:
                try:
                    collection.update_one({'_id': first}, {'$set': {'name': other['name'], 'folderId': value()}})
                except DuplicateKeyError:
                    pass
        elif op < 0.72:
            collection.delete_one(some_filter())
        elif op < 0.74:
            collection.delete_many(some_filter())
        elif op < 0.775:
            collection.drop()
            collection.create_index('name', unique=True)
            ids.clear()
        else:
            check(some_filter())
    for spec in [{'folderId': p} for p in parents] + [{'_id': i} for i in ids[:50]]:
        check(spec)
    print(json.dumps(stats))


main()
