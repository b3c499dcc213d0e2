# Clients that do not retry, for tests/lua/workers/reload.lua: loops of
# GET requests through Python's http.client until the file given second
# exists, half of them on one keep-alive connection each (reopened only
# when the server says Connection: close), half on a new connection per
# request. Prints one line: the number of answers, then each failure on a
# line of its own.
import http.client
import os
import sys
import threading

port, stop = int(sys.argv[1]), sys.argv[2]
loops = int(sys.argv[3]) if len(sys.argv) > 3 else 4
done = [0] * loops
failures = []


def loop(k, keepalive):
    conn = None
    while not os.path.exists(stop):
        if conn is None:
            conn = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
        try:
            conn.request('GET', '/')
            r = conn.getresponse()
            body = r.read()
            if r.status != 200 or not body.startswith(b'v'):
                failures.append('status %d: %r' % (r.status, body[:40]))
            else:
                done[k] += 1
            closing = r.will_close
        except Exception as e:
            failures.append('%s: %s' % (type(e).__name__, e))
            closing = True
        if closing or not keepalive:
            conn.close()
            conn = None


threads = [threading.Thread(target=loop, args=(k, k % 2 == 0)) for k in range(loops)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(sum(done))
for f in failures:
    print(f)
