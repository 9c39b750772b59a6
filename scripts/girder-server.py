"""Single-process Girder 5.0.21 test server on mongomock, with the hashsum_download plugin.

Usage:  .venv/bin/python scripts/girder-server.py [--port 0] [--data-dir DIR] [--exit-on-stdin-eof]
                                                  [--listing-plugin] [--count-db-queries]
                                                  [--assetstore filesystem|s3]

Prints ONE JSON line on stdout once the server answers HTTP, then serves until SIGTERM/SIGINT:
  {"ready":true,"apiUrl":"http://127.0.0.1:PORT/api/v1","port":PORT,"pid":PID,"dataDir":"...",
   "admin":{"id","login","password","apiKey"},"user":{...},
   "folders":{"adminPublic","adminPrivate","userPublic","userPrivate"},"plugins":[...],
   "assetstore":{"type":"filesystem"|"s3","id","name", and for s3 "bucket","service"}}
Everything else (warnings, errors) goes to stderr. The database lives in memory and dies with the
process. Each step follows /work/shared/girder-mock-launch.py; girder-api.md section 9 says why.

With --assetstore s3 the current assetstore is an S3 one on a local S3 server (moto, started as a
child process by scripts/moto-server.py on a free port of 127.0.0.1, and stopped with this one);
the filesystem assetstore still exists beside it. S3 stores no SHA-512 of its own, so the
hashsum_download setting auto_compute is turned on there (Girder then hashes each finished upload by
reading it back); "assetstore" in the ready line says so ("hashsumAutoCompute": true).
"""
import argparse
import collections
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.request

DB_URI = 'mongodb://127.0.0.1:27017/girder_mock'   # must name a database (get_database())
PLUGINS = ['hashsum_download']
LISTING_PLUGIN = 'mount_listing'   # scripts/girder-plugin, installed into .venv by scripts/setup.sh
DB_QUERIES_PATH = '/testing/db-queries'
PASSWORD = 'password'
S3_BUCKET = 'girder-test'
S3_KEYS = ('test-access-key', 'test-secret-key')   # moto takes any credentials


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--port', type=int, default=0, help='0 = pick a free port')
    parser.add_argument('--data-dir', default=None,
                        help='assetstore root (default: a temp dir removed at exit)')
    parser.add_argument('--exit-on-stdin-eof', action='store_true',
                        help='stop when stdin closes (a test runner that dies takes the server along)')
    parser.add_argument('--listing-plugin', action='store_true',
                        help='also load the girder-mount-listing plugin (GET /folder/{id}/listing)')
    parser.add_argument('--count-db-queries', action='store_true',
                        help='count database queries per collection; GET %s answers the counts'
                        % DB_QUERIES_PATH)
    parser.add_argument('--assetstore', choices=('filesystem', 's3'), default='filesystem',
                        help='the current assetstore: on disk (data dir), or S3 on a local moto server')
    return parser.parse_args()


def redirect_stdout_to_stderr():
    """Keep the real stdout for the JSON line only; anything Girder prints goes to stderr."""
    sys.stdout.flush()
    json_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(json_fd, 'w', buffering=1)


def setup_environment():
    # 1. environment Girder reads at import / request time
    os.environ['GIRDER_MONGO_URI'] = DB_URI
    os.environ['GIRDER_SERVER_MODE'] = 'testing'
    os.environ['GIRDER_FILESYSTEMASSETSTORE_RESERVED_MBYTES'] = '1'   # default reserves 10 GiB
    os.environ.setdefault('GIRDER_NOTIFICATION_REDIS_URL', 'redis://127.0.0.1:1')
    # create_app() calls logging.basicConfig(stream=sys.stdout, INFO); a root handler set first wins
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    # loggers that set their own INFO level (cherrypy.access, girder) still stop at the handler
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)


def patch_mongomock():
    # 2. every MongoClient Girder creates becomes an in-memory mongomock client
    import mongomock
    import mongomock.codec_options
    import mongomock.collection
    import mongomock.command_cursor
    import pymongo

    pymongo.MongoClient = mongomock.MongoClient

    # 3a. mongomock refuses Girder's CodecOptions(tz_aware=True, tzinfo=utc); it is only a check
    mongomock.codec_options.is_supported = lambda opts: None

    # 3b. pymongo>=4 removed Cursor.count(); Girder re-adds it to pymongo's cursor only
    if not hasattr(mongomock.collection.Cursor, 'count'):
        def _count(self, with_limit_and_skip=False):
            return len(self._compute_results(with_limit_and_skip))
        mongomock.collection.Cursor.count = _count

    # 3d. answer lookups by _id, folderId, itemId and parentId from maps, as MongoDB answers them
    #     from Girder's indexes, instead of scanning the collection (scripts/mongomock_index.py)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import mongomock_index

    mongomock_index.install()

    from girder.utility import config

    cfg = config.getConfig()
    cfg['database']['uri'] = DB_URI
    cfg['server'] = {'mode': 'testing'}

    # 3c. the REST layer only recognises pymongo cursors (filtermodel, Girder-Total-Count)
    import girder.api.rest as rest

    rest._MONGO_CURSOR_TYPES = rest._MONGO_CURSOR_TYPES + (
        mongomock.collection.Cursor, mongomock.command_cursor.CommandCursor)

    # 4. folder delete/copy are Celery tasks: run them in-process
    from girder_worker.app import app as celery_app

    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True


def count_db_queries(counts):
    """Count every query mongomock runs, per collection: each find() (find_one too) and count."""
    import mongomock.collection

    collection_class = mongomock.collection.Collection
    find = collection_class.find
    count_documents = collection_class.count_documents
    cursor_count = mongomock.collection.Cursor.count

    def counted_find(self, *args, **kwargs):
        counts[self.name] += 1
        return find(self, *args, **kwargs)

    def counted_count_documents(self, *args, **kwargs):
        counts[self.name] += 1
        return count_documents(self, *args, **kwargs)

    def counted_cursor_count(self, *args, **kwargs):
        counts[self.collection.name] += 1
        return cursor_count(self, *args, **kwargs)

    collection_class.find = counted_find
    collection_class.count_documents = counted_count_documents
    mongomock.collection.Cursor.count = counted_cursor_count


def serve_db_queries(app, counts):
    """ASGI wrapper: GET DB_QUERIES_PATH answers the counts as JSON; everything else goes to Girder."""
    async def wrapped(scope, receive, send):
        if scope['type'] != 'http' or scope['path'] != DB_QUERIES_PATH:
            return await app(scope, receive, send)
        body = json.dumps(dict(counts)).encode()
        await send({'type': 'http.response.start', 'status': 200,
                    'headers': [(b'content-type', b'application/json'),
                                (b'content-length', str(len(body)).encode())]})
        await send({'type': 'http.response.body', 'body': body})
    return wrapped


def build_app(plugins):
    # 5. build the app ourselves; stub girder.wsgi so importing girder.asgi does not build a second
    #    (production-mode, all-plugins) app
    from girder import plugin
    from girder.utility.server import create_app

    missing = [name for name in plugins if name not in plugin.allPlugins()]
    if missing:
        raise RuntimeError('plugins not installed in this venv: %s (run scripts/setup.sh)'
                           % ', '.join(missing))
    info = create_app(mode='testing')
    plugin._loadPlugins(info, plugins)
    stub = types.ModuleType('girder.wsgi')
    stub.app = info['serverRoot']
    sys.modules['girder.wsgi'] = stub
    from girder.asgi import app
    return app


def seed_accounts(assetstore_root):
    # 6-7. fast password hashing, users, API keys, a filesystem assetstore (first one is current)
    from girder.models.api_key import ApiKey
    from girder.models.assetstore import Assetstore
    from girder.models.folder import Folder
    from girder.models.user import User

    User()._cryptContext.scheme = 'plaintext'
    accounts = {}
    folders = {}
    for role, admin, first, last in (('admin', True, 'A', 'Dmin'), ('user', False, 'U', 'Ser')):
        user = User().createUser(login=role, password=PASSWORD, firstName=first, lastName=last,
                                 email='%s@example.com' % role, admin=admin)
        key = ApiKey().createApiKey(user=user, name='test', scope=None)
        accounts[role] = {'id': str(user['_id']), 'login': role, 'password': PASSWORD,
                          'apiKey': key['key']}
        for folder in Folder().find({'parentId': user['_id'], 'parentCollection': 'user'}):
            folders[role + folder['name']] = str(folder['_id'])
    Assetstore().createFilesystemAssetstore(name='test', root=assetstore_root)
    return accounts, folders


def start_moto(timeout=60.0):
    """scripts/moto-server.py as a child that dies with this process (stdin EOF, or PR_SET_PDEATHSIG)."""
    def die_with_parent():
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'moto-server.py')
    child = subprocess.Popen([sys.executable, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             preexec_fn=die_with_parent)
    line = []
    reader = threading.Thread(target=lambda: line.append(child.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line or not line[0]:
        child.kill()
        raise RuntimeError('the moto server did not start (exit code %s)' % child.poll())
    return child, json.loads(line[0])['port']


def stop_moto(child):
    child.stdin.close()
    child.terminate()
    try:
        child.wait(10)
    except subprocess.TimeoutExpired:
        child.kill()


def make_s3_assetstore(service):
    """A bucket on the local S3 server, and an S3 assetstore on it made the current one."""
    import boto3
    from girder.models.assetstore import Assetstore

    boto3.client('s3', endpoint_url=service, region_name='us-east-1', aws_access_key_id=S3_KEYS[0],
                 aws_secret_access_key=S3_KEYS[1]).create_bucket(Bucket=S3_BUCKET)
    store = Assetstore().createS3Assetstore(name='s3', bucket=S3_BUCKET, accessKeyId=S3_KEYS[0],
                                            secret=S3_KEYS[1], service=service)
    store['current'] = True
    store = Assetstore().save(store)
    from girder.models.setting import Setting
    Setting().set('hashsum_download.auto_compute', True)
    return store


def describe_assetstore():
    from girder.models.assetstore import Assetstore
    from girder.models.setting import Setting

    store = Assetstore().getCurrent()
    out = {'type': 's3' if store.get('bucket') else 'filesystem', 'id': str(store['_id']),
           'name': store['name'],
           'hashsumAutoCompute': bool(Setting().get('hashsum_download.auto_compute'))}
    if out['type'] == 's3':
        out.update(bucket=store['bucket'], service=store['service'])
    return out


def listen_socket(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(('127.0.0.1', port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def wait_http(api_url, server_thread, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server_thread.is_alive():
            raise RuntimeError('uvicorn stopped before answering')
        try:
            with urllib.request.urlopen(api_url + '/system/version', timeout=5) as resp:
                if resp.status == 200:
                    return json.loads(resp.read())
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError('server did not answer HTTP within %.0f s' % timeout)


def main():
    args = parse_args()
    json_out = redirect_stdout_to_stderr()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    if args.exit_on_stdin_eof:
        def watch_stdin():
            while sys.stdin.buffer.read1(65536):
                pass
            stop.set()
        threading.Thread(target=watch_stdin, name='stdin-eof', daemon=True).start()

    own_data_dir = args.data_dir is None
    data_dir = os.path.abspath(args.data_dir or tempfile.mkdtemp(prefix='girder-server-'))
    os.makedirs(data_dir, exist_ok=True)
    exit_code = 0
    moto = None
    try:
        setup_environment()
        patch_mongomock()
        plugins = PLUGINS + ([LISTING_PLUGIN] if args.listing_plugin else [])
        app = build_app(plugins)
        if args.count_db_queries:
            counts = collections.Counter()
            count_db_queries(counts)
            app = serve_db_queries(app, counts)
        accounts, folders = seed_accounts(data_dir)
        if args.assetstore == 's3':
            moto, moto_port = start_moto()
            make_s3_assetstore('http://127.0.0.1:%d' % moto_port)

        # 8. serve the app object in this process (reload would fork and lose the in-memory DB);
        #    in a thread, so this (main) thread owns the signals and the readiness check
        import uvicorn

        sock = listen_socket(args.port)
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, host='127.0.0.1', port=port, reload=False,
                                log_level='warning', server_header=False, date_header=False,
                                timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={'sockets': [sock]},
                                  name='uvicorn', daemon=True)
        thread.start()
        api_url = 'http://127.0.0.1:%d/api/v1' % port
        wait_http(api_url, thread)
        if stop.is_set():
            raise KeyboardInterrupt

        json_out.write(json.dumps({
            'ready': True, 'apiUrl': api_url, 'port': port, 'pid': os.getpid(),
            'dataDir': data_dir, 'admin': accounts['admin'], 'user': accounts['user'],
            'folders': folders, 'plugins': plugins, 'assetstore': describe_assetstore(),
        }) + '\n')
        json_out.flush()

        while not stop.is_set():
            if not thread.is_alive():
                logging.error('girder-server: uvicorn stopped unexpectedly')
                exit_code = 1
                break
            stop.wait(0.5)
        server.should_exit = True
        thread.join(15)
    except KeyboardInterrupt:
        pass
    except Exception:
        logging.exception('girder-server: failed')
        exit_code = 1
    finally:
        if moto is not None:
            stop_moto(moto)
        if own_data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    sys.stderr.flush()
    # worker and executor threads may linger; the in-memory database needs no orderly shutdown
    os._exit(exit_code)


if __name__ == '__main__':
    main()
