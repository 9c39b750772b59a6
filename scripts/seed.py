"""Fills a Girder folder with a small demo tree, through girder_client.

Usage:  .venv/bin/python scripts/seed.py --api-url URL --api-key KEY --folder PARENT_ID [NAME]

Creates folder NAME (default "demo") in folder PARENT_ID (reusing it if it exists; entries that
already exist are left alone) and prints its id on stdout:

  NAME/
    README.txt
    notes/todo.txt, notes/ideas.md, notes/2026/january.txt
    data/measurements.csv            (1000 rows)
    data/random-20MiB.bin            (20 MiB of random bytes)
    experiment-1                     (one item with several files: a directory on the mount)
        params.json, run.log, result.txt
    empty.txt                        (0 bytes)
Metadata is set on the "data" folder and the "experiment-1" item (visible as xattrs).
"""
import argparse
import io
import json
import os
import sys
import tempfile

import girder_client

BIG_SIZE = 20 * 1024 * 1024

README = """This folder was made by scripts/seed.py for the girder-mount demo.

Try: ls -l, cat, cp, mkdir, rm, mv on the mount, then look at the same folder in Girder.
"""

TEXT_FILES = {
    'README.txt': README,
    'empty.txt': '',
    'notes/todo.txt': '- mount a Girder folder\n- copy files in and out\n- check the upload queue\n',
    'notes/ideas.md': '# Ideas\n\n* Read through the block cache\n* Write back on close\n',
    'notes/2026/january.txt': 'Nothing happened in January.\n',
}

EXPERIMENT_FILES = {
    'params.json': json.dumps({'alpha': 0.5, 'steps': 100, 'seed': 42}, indent=2) + '\n',
    'run.log': ''.join('step %03d loss=%.4f\n' % (i, 1.0 / (i + 1)) for i in range(100)),
    'result.txt': 'final loss: 0.0099\n',
}


def csv_text(rows=1000):
    lines = ['id,time_s,temperature_c,pressure_kpa']
    for i in range(rows):
        lines.append('%d,%.1f,%.2f,%.3f' % (i, i * 0.5, 20 + (i % 37) * 0.25, 101.325 - (i % 11) * 0.01))
    return '\n'.join(lines) + '\n'


class Seeder:
    def __init__(self, gc, root_id):
        self.gc = gc
        self.root_id = root_id
        self.folders = {'': root_id}

    def folder(self, rel):
        """Id of folder `rel` (slash-separated, relative to the root), created as needed."""
        if rel not in self.folders:
            parent, _, name = rel.rpartition('/')
            doc = self.gc.createFolder(self.folder(parent), name, reuseExisting=True)
            self.folders[rel] = doc['_id']
        return self.folders[rel]

    def has_item(self, folder_id, name):
        return any(True for _ in self.gc.listItem(folder_id, name=name))

    def upload_text(self, rel, text, mime='text/plain'):
        parent, _, name = rel.rpartition('/')
        folder_id = self.folder(parent)
        if self.has_item(folder_id, name):
            return
        data = text.encode('utf-8')
        self.gc.uploadStreamToFolder(folder_id, io.BytesIO(data), name, len(data), mimeType=mime)

    def upload_random(self, rel, size):
        parent, _, name = rel.rpartition('/')
        folder_id = self.folder(parent)
        if self.has_item(folder_id, name):
            return
        with tempfile.TemporaryFile() as tmp:
            left = size
            while left > 0:
                block = os.urandom(min(left, 1024 * 1024))
                tmp.write(block)
                left -= len(block)
            tmp.seek(0)
            self.gc.uploadStreamToFolder(folder_id, tmp, name, size,
                                         mimeType='application/octet-stream')

    def multi_file_item(self, name, files, meta):
        if self.has_item(self.root_id, name):
            return
        item = self.gc.createItem(self.root_id, name)
        for file_name, text in files.items():
            data = text.encode('utf-8')
            self.gc.uploadFile(item['_id'], io.BytesIO(data), file_name, len(data),
                               parentType='item', mimeType='text/plain')
        self.gc.addMetadataToItem(item['_id'], meta)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--api-url', required=True, help='e.g. http://127.0.0.1:8080/api/v1')
    parser.add_argument('--api-key', default=os.environ.get('GIRDER_API_KEY'),
                        help='API key (default: env GIRDER_API_KEY)')
    parser.add_argument('--folder', required=True, help='id of the folder to create NAME in')
    parser.add_argument('name', nargs='?', default='demo', help='name of the demo folder')
    args = parser.parse_args()
    if not args.api_key:
        parser.error('no API key: pass --api-key or set GIRDER_API_KEY')

    gc = girder_client.GirderClient(apiUrl=args.api_url)
    gc.authenticate(apiKey=args.api_key)
    root = gc.createFolder(args.folder, args.name, reuseExisting=True)
    seeder = Seeder(gc, root['_id'])

    for rel, text in TEXT_FILES.items():
        mime = 'text/markdown' if rel.endswith('.md') else 'text/plain'
        seeder.upload_text(rel, text, mime)
    seeder.upload_text('data/measurements.csv', csv_text(), 'text/csv')
    seeder.upload_random('data/random-20MiB.bin', BIG_SIZE)
    gc.addMetadataToFolder(seeder.folder('data'), {'source': 'seed.py', 'units': 'SI'})
    seeder.multi_file_item('experiment-1', EXPERIMENT_FILES, {'status': 'done', 'runs': 1})

    print(root['_id'], flush=True)


if __name__ == '__main__':
    try:
        main()
    except girder_client.HttpError as e:
        print('seed.py: %s\n%s' % (e, e.responseText), file=sys.stderr)
        sys.exit(1)
