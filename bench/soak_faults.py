#!/usr/bin/env python3
"""Fault injector for bench/soak.sh: for DURATION seconds, bounded
connections to 127.0.0.1:PORT that reset (RST, SO_LINGER 0) mid-head,
mid-body and mid-response, send garbage, and trickle slowly. At most
MAX_SLOW slow clients at once; every connection is closed by the end.
Prints a count of each kind when done."""
import random, socket, struct, sys, threading, time

port, duration = int(sys.argv[1]), float(sys.argv[2])
MAX_SLOW = 50
end = time.time() + duration
counts = {}
lock = threading.Lock()
slow = threading.Semaphore(MAX_SLOW)


def count(kind):
    with lock:
        counts[kind] = counts.get(kind, 0) + 1


def conn():
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    return s


def reset(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    s.close()


HEAD = b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n'


def fault():
    kind = random.choice(['mid-head', 'mid-body', 'mid-response', 'garbage', 'chunked-reset'])
    try:
        s = conn()
        if kind == 'mid-head':
            s.sendall(HEAD[:random.randrange(1, len(HEAD))])
        elif kind == 'mid-body':
            s.sendall(HEAD + b'x' * random.randrange(1, 99999))
        elif kind == 'mid-response':
            s.sendall(b'GET /stream HTTP/1.1\r\nHost: x\r\n\r\n')
            s.recv(random.randrange(1, 4096))
        elif kind == 'garbage':
            s.sendall(bytes(random.randrange(256) for _ in range(random.randrange(1, 2000))))
        else:
            s.sendall(b'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel')
        reset(s)
        count(kind)
    except OSError:
        count(kind + ' (refused)')


def trickle():
    with slow:
        try:
            s = conn()
            data = b'GET / HTTP/1.1\r\nHost: x\r\n\r\n' if random.random() < 0.5 else \
                b'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n'
            for b in data:
                if time.time() > end:
                    break
                s.send(bytes([b]))
                time.sleep(random.uniform(0.2, 1.5))
            s.close()
            count('slow')
        except OSError:
            count('slow (cut)')


threads = []
while time.time() < end:
    for _ in range(20):
        fault()
    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    threads.append(t)
    threads = [t for t in threads if t.is_alive()]
    time.sleep(0.1)
for t in threads:
    t.join(timeout=10)
print(' '.join(f'{k}={v}' for k, v in sorted(counts.items())))
