#!/usr/bin/env python3
"""A seeded random-operations checker for one file, in the spirit of fsx (xfstests/LTP), ours.

Usage:  python3 test/tools/fs_exerciser.py DIR [--seed N] [--ops N] [--max-size BYTES] ...

It creates DIR/NAME and runs a seeded sequence of operations on it: write, truncate (grow and
shrink), read, mmap read, mmap write, close and reopen, fsync and rename (the open file gets a
new name). It keeps the file's expected contents in memory and, after every operation, checks
the size (fstat) and the contents (the whole file, or only what the operation touched with
--check touched) against that model.

Exit 0: every check passed; the last stdout line is JSON {"ok": true, "path", "size", "sha512", ...}.
Exit 1: the file differed from the model: prints the op log, the first differing offset, the bytes
        expected and read there, and the ops that last touched that offset.
Exit 2: an operation failed (OSError): prints the op log and the error.
--trace FILE appends each op to FILE (with the seconds since the start) before doing it, so a run
killed in a hung op says which, and since when.
Standard library only (os, mmap, random, hashlib, json).
"""
import argparse
import hashlib
import json
import mmap
import os
import random
import sys
import time

PAGE = mmap.PAGESIZE
OPS = ('write', 'truncate', 'read', 'mapread', 'mapwrite', 'reopen', 'fsync', 'rename')
# relative weights; fsync uploads on this mount, so it is rarer than the rest
WEIGHTS = {'write': 30, 'truncate': 8, 'read': 20, 'mapread': 10, 'mapwrite': 10, 'reopen': 8, 'fsync': 2, 'rename': 3}


class Mismatch(Exception):
    pass


def parse_args(argv):
    p = argparse.ArgumentParser(description='seeded random-operations checker for one file')
    p.add_argument('dir', help='directory to work in (e.g. on a mount)')
    p.add_argument('--seed', type=int, default=None, help='random seed (default: from the clock, printed)')
    p.add_argument('--ops', type=int, default=1000, help='number of operations (default 1000)')
    p.add_argument('--max-size', type=int, default=256 * 1024, help='largest file size (default 256 KiB)')
    p.add_argument('--max-len', type=int, default=64 * 1024, help='longest read or write (default 64 KiB)')
    p.add_argument('--name', default='exerciser.dat', help='file name (default exerciser.dat)')
    p.add_argument('--no-mmap', action='store_true', help='no mapped reads or writes')
    p.add_argument('--no-reopen', action='store_true', help='never close and reopen')
    p.add_argument('--no-fsync', action='store_true', help='never fsync')
    p.add_argument('--no-rename', action='store_true', help='never rename')
    p.add_argument('--check', choices=('full', 'touched'), default='full',
                   help='after each op compare the whole file (default) or only what the op touched')
    p.add_argument('--trace', default=None, help='append each op to this file before doing it')
    p.add_argument('--corrupt-after', type=int, default=None, metavar='N',
                   help='to test this checker: after op N, change one byte of the file behind the model')
    p.add_argument('--log-keep', type=int, default=200, help='ops of the log printed on a failure (default 200, 0 = all)')
    args = p.parse_args(argv)
    if args.max_size < 1 or args.max_len < 1 or args.ops < 0:
        p.error('--max-size and --max-len must be positive, --ops not negative')
    return args


class Exerciser:
    def __init__(self, args):
        self.args = args
        self.seed = args.seed if args.seed is not None else int(time.time() * 1000) % (1 << 31)
        self.rng = random.Random(self.seed)
        self.model = bytearray()
        self.names = [args.name, args.name + '.renamed']
        self.current = 0  # index into names
        self.fd = -1
        self.log = []
        self.counts = {op: 0 for op in OPS}
        self.trace = open(args.trace, 'a', buffering=1) if args.trace else None
        self.started = time.monotonic()
        enabled = [op for op in OPS if not self.disabled(op)]
        self.ops = enabled
        self.weights = [WEIGHTS[op] for op in enabled]

    def disabled(self, op):
        a = self.args
        return ((op in ('mapread', 'mapwrite') and a.no_mmap) or (op == 'reopen' and a.no_reopen)
                or (op == 'fsync' and a.no_fsync) or (op == 'rename' and a.no_rename))

    @property
    def path(self):
        return os.path.join(self.args.dir, self.names[self.current])

    # ---- the operations; each returns (description, (start, end) of the bytes it touched) ----

    def op_write(self):
        off = self.rng.randrange(self.args.max_size)
        length = self.rng.randint(1, min(self.args.max_len, self.args.max_size - off))
        data = self.rng.randbytes(length)
        self.note(f'write 0x{off:x} len 0x{length:x}')
        done = 0
        while done < length:
            done += os.pwrite(self.fd, data[done:], off + done)
        self.put(off, data)
        return (min(off, len(self.model)), off + length)

    def op_truncate(self):
        size = self.rng.randint(0, self.args.max_size)
        old = len(self.model)
        self.note(f'truncate 0x{old:x} -> 0x{size:x} ({"grow" if size > old else "shrink" if size < old else "same"})')
        os.ftruncate(self.fd, size)
        self.resize(size)
        return (min(old, size), max(old, size))

    def op_read(self):
        off, length = self.read_range(past_end=True)
        self.note(f'read 0x{off:x} len 0x{length:x}')
        got = self.pread_all(off, length)
        self.compare(off, got, self.model[off:off + length], 'read')
        return None

    def op_mapread(self):
        if len(self.model) == 0:
            self.note('mapread skipped (empty file)')
            return None
        off, length = self.read_range(past_end=False)
        self.note(f'mapread 0x{off:x} len 0x{length:x}')
        base = off - off % PAGE
        with mmap.mmap(self.fd, off + length - base, access=mmap.ACCESS_READ, offset=base) as m:
            got = m[off - base:off - base + length]
        self.compare(off, got, self.model[off:off + length], 'mapread')
        return None

    def op_mapwrite(self):
        off = self.rng.randrange(self.args.max_size)
        length = self.rng.randint(1, min(self.args.max_len, self.args.max_size - off))
        data = self.rng.randbytes(length)
        old = len(self.model)
        grow = off + length > old
        self.note(f'mapwrite 0x{off:x} len 0x{length:x}' + (f' (ftruncate 0x{old:x} -> 0x{off + length:x} first)' if grow else ''))
        if grow:  # a mapping cannot extend a file: grow it first, as fsx does
            os.ftruncate(self.fd, off + length)
            self.resize(off + length)
        base = off - off % PAGE
        with mmap.mmap(self.fd, off + length - base, access=mmap.ACCESS_WRITE, offset=base) as m:
            m[off - base:off - base + length] = data
            m.flush()  # msync(MS_SYNC)
        self.put(off, data)
        return (min(off, old), off + length)

    def op_reopen(self):
        self.note('close and reopen')
        os.close(self.fd)
        self.fd = -1
        self.fd = os.open(self.path, os.O_RDWR)
        return (0, len(self.model))

    def op_fsync(self):
        self.note('fsync')
        os.fsync(self.fd)
        return None

    def op_rename(self):
        src = self.path
        self.current = 1 - self.current
        self.note(f'rename {os.path.basename(src)} -> {self.names[self.current]} (file open)')
        os.rename(src, self.path)
        return None

    def corrupt(self):
        """Flips the bits of the byte in the middle of the file (growing an empty file by one byte)."""
        at = len(self.model) // 2
        old = self.model[at] if at < len(self.model) else 0
        self.note(f'(test of the checker) byte 0x{at:x} changed behind the model')
        other = os.open(self.path, os.O_RDWR)
        try:
            os.pwrite(other, bytes([old ^ 0xff]), at)
        finally:
            os.close(other)
        return (at, at + 1)

    # ---- the model and the checks ----

    def put(self, off, data):
        if off > len(self.model):
            self.model.extend(bytes(off - len(self.model)))
        self.model[off:off + len(data)] = data

    def resize(self, size):
        if size < len(self.model):
            del self.model[size:]
        else:
            self.model.extend(bytes(size - len(self.model)))

    def read_range(self, past_end):
        limit = max(len(self.model), 1) if not past_end else max(len(self.model) + 4096, 1)
        off = self.rng.randrange(limit)
        hi = limit - off if not past_end else self.args.max_len
        return off, self.rng.randint(1, max(1, min(self.args.max_len, hi)))

    def pread_all(self, off, length):
        parts = []
        while length > 0:
            chunk = os.pread(self.fd, length, off)
            if not chunk:
                break
            parts.append(chunk)
            off += len(chunk)
            length -= len(chunk)
        return b''.join(parts)

    def compare(self, off, got, want, what):
        if got == want:
            return
        at = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), min(len(got), len(want)))
        first = off + at
        raise Mismatch(
            f'{what}: {len(got)} bytes read at 0x{off:x}, {len(want)} expected; first difference at offset 0x{first:x} ({first})\n'
            f'  expected from 0x{first:x}: {bytes(want[at:at + 32]).hex(" ")}\n'
            f'  read     from 0x{first:x}: {bytes(got[at:at + 32]).hex(" ")}\n'
            f'  model size 0x{len(self.model):x}; ops that last touched that offset:\n' + self.touched_by(first))

    def check(self, touched):
        size = os.fstat(self.fd).st_size
        if size != len(self.model):
            raise Mismatch(f'size: fstat says 0x{size:x} ({size}), the model 0x{len(self.model):x} ({len(self.model)}); '
                           f'first differing offset 0x{min(size, len(self.model)):x}')
        if self.args.check == 'full':
            start, end = 0, len(self.model)
        elif touched is None:
            return
        else:
            start, end = touched[0], min(touched[1], len(self.model))
        if end > start:
            self.compare(start, self.pread_all(start, end - start), self.model[start:end], 'check after the op')

    def touched_by(self, offset):
        lines = [entry for entry in self.log
                 if entry[2] is not None and 'reopen' not in entry[0] and entry[2][0] <= offset < entry[2][1]]
        return '\n'.join(f'    {entry[0]}' for entry in lines[-5:]) or '    (none)'

    def note(self, text):
        line = f'#{len(self.log) + 1} {text}'
        self.log.append([line, None, None])
        if self.trace:
            self.trace.write(f'{time.monotonic() - self.started:8.3f}s {line}\n')

    # ---- the run ----

    def run(self):
        os.makedirs(self.args.dir, exist_ok=True)
        for name in self.names:
            try:
                os.unlink(os.path.join(self.args.dir, name))
            except FileNotFoundError:
                pass
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        for n in range(1, self.args.ops + 1):
            op = self.rng.choices(self.ops, self.weights)[0]
            touched = getattr(self, 'op_' + op)()
            self.counts[op] += 1
            self.log[-1][2] = touched
            if n == self.args.corrupt_after:
                touched = self.corrupt()
            self.check(touched)
        os.close(self.fd)
        self.fd = -1
        # what a later reader sees: reopen and read it all
        self.note('final close, reopen and full read')
        self.fd = os.open(self.path, os.O_RDONLY)
        whole = self.pread_all(0, len(self.model) + 1)
        self.compare(0, whole, self.model, 'final read')
        os.close(self.fd)
        self.fd = -1

    def dump_log(self, out):
        keep = self.args.log_keep
        entries = self.log if keep == 0 else self.log[-keep:]
        if len(entries) < len(self.log):
            print(f'op log (last {len(entries)} of {len(self.log)}):', file=out)
        else:
            print('op log:', file=out)
        for entry in entries:
            print(f'  {entry[0]}', file=out)


def main(argv):
    args = parse_args(argv)
    ex = Exerciser(args)
    print(f'fs_exerciser: seed {ex.seed}, {args.ops} ops, max size {args.max_size}, max len {args.max_len}, '
          f'ops {",".join(ex.ops)}, check {args.check}, in {args.dir}', flush=True)
    started = time.monotonic()
    try:
        ex.run()
    except Mismatch as err:
        ex.dump_log(sys.stdout)
        print(f'MISMATCH after op #{len(ex.log)} (seed {ex.seed}): {err}', flush=True)
        return 1
    except OSError as err:
        ex.dump_log(sys.stdout)
        print(f'ERROR in op #{len(ex.log)} (seed {ex.seed}): {err!r}', flush=True)
        return 2
    data = bytes(ex.model)
    print(json.dumps({
        'ok': True, 'seed': ex.seed, 'ops': args.ops, 'path': ex.path, 'name': ex.names[ex.current],
        'size': len(data), 'sha512': hashlib.sha512(data).hexdigest(), 'counts': ex.counts,
        'seconds': round(time.monotonic() - started, 3),
    }), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
