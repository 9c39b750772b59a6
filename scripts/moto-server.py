"""A local S3 server (moto's server mode) for the S3 test assetstore; scripts/girder-server.py starts it.

Usage:  .venv/bin/python scripts/moto-server.py [--port 0]

Binds 127.0.0.1, prints ONE JSON line {"port": PORT} on stdout once it listens, then serves until
SIGTERM/SIGINT or until its stdin closes (the process that started it died). Objects live in memory
(and in moto's spooled temp files) and die with the process.
"""
import argparse
import json
import logging
import signal
import sys
import threading

IDLE_TIMEOUT_S = 20


class _ObjectBytes:
    """An object's bytes, read from moto's spooled file only where they are sliced."""

    def __init__(self, key):
        self.key = key
        self.size = key.size

    def __len__(self):
        return self.size

    def __getitem__(self, part):
        start, stop, _ = part.indices(self.size)
        with self.key.lock:
            self.key._value_buffer.seek(start)
            return self.key._value_buffer.read(max(0, stop - start))

    def __bytes__(self):
        return self[0:self.size]


def serve_ranges_by_reading_them():
    """moto answers a ranged GET by reading the WHOLE object and slicing it (and by running a regex
    over it): a 1 MiB range of a 1 GiB object costs a 1 GiB read. S3 does not; without this a
    reader that sends ranged GETs (the mount) would be measured against a cost real S3 does not
    have. GET /bucket/key now hands moto a lazy object whose slices read only their bytes; a whole
    object answer is read whole, as before."""
    import threading

    from moto.s3 import models, responses

    lazy = threading.local()
    whole_value = models.FakeKey.value

    def value(self):
        return _ObjectBytes(self) if getattr(lazy, 'on', False) else whole_value.fget(self)

    models.FakeKey.value = property(value, whole_value.fset)
    get_object = responses.S3Response.get_object
    key_response = responses.S3Response.key_response

    def lazy_get_object(self):
        lazy.on = True
        try:
            return get_object(self)
        finally:
            lazy.on = False

    def whole_unless_sliced(self, *args, **kwargs):
        status, headers, body = key_response(self, *args, **kwargs)
        return status, headers, bytes(body) if isinstance(body, _ObjectBytes) else body

    responses.S3Response.get_object = lazy_get_object
    responses.S3Response.key_response = whole_unless_sliced


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--port', type=int, default=0, help='0 = pick a free port')
    args = parser.parse_args()

    # one log line per request from werkzeug would drown the test server's stderr
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format='%(asctime)s %(levelname)s moto %(name)s: %(message)s')
    logging.getLogger('werkzeug').setLevel(logging.WARNING)

    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from moto.server import ThreadedMotoServer

    # S3 gives up on a request whose body stops coming (400 RequestTimeout after about 20 s idle);
    # werkzeug waits for ever. Without this, a client cut mid-part leaves Girder's proxied PUT, and
    # one of the few executor threads of Girder's ASGI bridge, hanging for good.
    MotoRequestHandler.timeout = IDLE_TIMEOUT_S
    serve_ranges_by_reading_them()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def watch_stdin():
        while sys.stdin.buffer.read1(65536):
            pass
        stop.set()

    threading.Thread(target=watch_stdin, name='stdin-eof', daemon=True).start()

    server = ThreadedMotoServer(ip_address='127.0.0.1', port=args.port, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    sys.stdout.write(json.dumps({'port': port}) + '\n')
    sys.stdout.flush()
    stop.wait()
    server.stop()


if __name__ == '__main__':
    main()
