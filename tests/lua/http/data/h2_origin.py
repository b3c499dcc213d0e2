"""An HTTP/2 origin server for tests/lua/http/h2_client*.lua, on Debian
python3-h2's state machine (h2.connection): cleartext by prior knowledge,
or TLS with ALPN 'h2' when given a cert and key. Usage:
h2_origin.py MAX_STREAMS [CERT KEY]; prints its port, then serves until
GET /quit. Paths:
  /hello        200 'hello from python'
  /conn         the number of the connection the request came on
  /slow         answers after 0.2 s (streams at once are counted)
  /stats        'conns=N max=M': connections so far, most streams open at once
  /big          200000 bytes (more than the client's window)
  /echo         the request's body, with its length in x-length
  /goaway       answered, then GOAWAY (last stream: this one) and closed
  /goaway-now   the first time: GOAWAY at once with stream 1 as the last
                one processed (later ones to be sent again); then 'retried'
  /refuse       the first on each connection: RST_STREAM REFUSED_STREAM
  /reset        RST_STREAM INTERNAL_ERROR instead of a response
  /die          a head promising 100000 bytes, 1000 of them, then closed
"""
import select
import socket
import ssl
import sys
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame

lock = threading.Lock()
stats = {'conns': 0, 'max': 0, 'open': 0, 'goaway': False}


class Conn:
    def __init__(self, sock, number, max_streams):
        self.sock = sock
        self.number = number
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding='utf-8'))
        self.h2.initiate_connection()
        self.h2.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams})
        self.pending = {}   # stream id -> bytes left to send
        self.timers = []    # (due, stream id)
        self.bodies = {}    # stream id -> request body so far
        self.paths = {}
        self.refused = False
        self.closing = False
        self.last = 0

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def respond(self, sid, status, body, headers=()):
        with lock:
            stats['open'] -= 1
        h = [(':status', str(status)), ('content-length', str(len(body))),
             ('content-type', 'text/plain')] + list(headers)
        self.h2.send_headers(sid, h, end_stream=not body)
        if body:
            self.pending[sid] = body
            self.push()

    def push(self):
        for sid in list(self.pending):
            data = self.pending[sid]
            try:
                room = min(self.h2.local_flow_control_window(sid),
                           self.h2.max_outbound_frame_size)
            except Exception:
                del self.pending[sid]
                continue
            while data and room > 0:
                n = min(room, len(data))
                self.h2.send_data(sid, data[:n], end_stream=n == len(data))
                data = data[n:]
                room = min(self.h2.local_flow_control_window(sid),
                           self.h2.max_outbound_frame_size)
            if data:
                self.pending[sid] = data
            else:
                del self.pending[sid]

    def request(self, sid):
        path = self.paths.pop(sid)
        body = self.bodies.pop(sid, b'')
        if path == '/hello':
            self.respond(sid, 200, b'hello from python')
        elif path == '/conn':
            self.respond(sid, 200, str(self.number).encode())
        elif path == '/slow':
            self.timers.append((time.time() + 0.2, sid))
        elif path == '/stats':
            with lock:
                s = 'conns=%d max=%d' % (stats['conns'], stats['max'])
            self.respond(sid, 200, s.encode())
        elif path == '/big':
            self.respond(sid, 200, b'y' * 200000)
        elif path == '/echo':
            self.respond(sid, 200, body, [('x-length', str(len(body)))])
        elif path == '/goaway':
            self.respond(sid, 200, b'bye')
            self.h2.close_connection(last_stream_id=sid)
            self.closing = True
        elif path == '/goaway-now' and not stats['goaway']:
            stats['goaway'] = True
            with lock:
                stats['open'] -= 1
            # Only the connection's first stream is processed: the others
            # are left for the client to send again.
            # Raw, so that python-h2 still lets stream 1 finish.
            self.flush()
            f = hyperframe.frame.GoAwayFrame(0)
            f.last_stream_id = 1
            self.sock.sendall(f.serialize())
            for t in [t for t in self.timers if t[1] > 1]:
                self.timers.remove(t)
                with lock:
                    stats['open'] -= 1
            self.closing = True
        elif path == '/goaway-now':
            self.respond(sid, 200, b'retried')
        elif path == '/refuse' and not self.refused:
            self.refused = True
            with lock:
                stats['open'] -= 1
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
        elif path == '/refuse':
            self.respond(sid, 200, b'accepted after a refusal')
        elif path == '/reset':
            with lock:
                stats['open'] -= 1
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
        elif path == '/die':
            self.h2.send_headers(sid, [(':status', '200'), ('content-length', '100000')])
            self.h2.send_data(sid, b'z' * 1000)
            self.flush()
            self.sock.close()
            raise ConnectionError('died on purpose')
        elif path == '/quit':
            self.respond(sid, 200, b'bye')
            self.flush()
            sys.stdout.flush()
            import os
            os._exit(0)
        else:
            self.respond(sid, 404, b'no')

    def event(self, e):
        if isinstance(e, h2.events.RequestReceived):
            h = dict(e.headers)
            self.paths[e.stream_id] = h[':path']
            with lock:
                stats['open'] += 1
                stats['max'] = max(stats['max'], stats['open'])
            if e.stream_ended is not None:
                self.request(e.stream_id)
        elif isinstance(e, h2.events.DataReceived):
            self.bodies[e.stream_id] = self.bodies.get(e.stream_id, b'') + e.data
            self.h2.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        elif isinstance(e, h2.events.StreamEnded):
            if e.stream_id in self.paths:
                self.request(e.stream_id)
        elif isinstance(e, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self.push()
        elif isinstance(e, h2.events.StreamReset):
            self.pending.pop(e.stream_id, None)

    def run(self):
        self.flush()
        while True:
            now = time.time()
            for due, sid in [t for t in self.timers if t[0] <= now]:
                self.timers.remove((due, sid))
                self.respond(sid, 200, b'slow')
            self.flush()
            if self.closing and not self.pending and not self.timers:
                self.sock.close()
                return
            r, _, _ = select.select([self.sock], [], [], 0.02)
            if not r and not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
                continue
            data = self.sock.recv(65536)
            if not data:
                return
            for e in self.h2.receive_data(data):
                self.event(e)


def serve(sock, number, max_streams):
    try:
        Conn(sock, number, max_streams).run()
    except (OSError, ConnectionError):
        pass
    except Exception:
        import traceback
        traceback.print_exc()
    finally:
        try:
            sock.close()
        except OSError:
            pass


def main():
    max_streams = int(sys.argv[1])
    ctx = None
    if len(sys.argv) > 3:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        ctx.set_alpn_protocols(['h2'])
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(('127.0.0.1', 0))
    lsock.listen(64)
    print(lsock.getsockname()[1], flush=True)
    while True:
        sock, _ = lsock.accept()
        if ctx:
            try:
                sock = ctx.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError):
                continue
        with lock:
            stats['conns'] += 1
            number = stats['conns']
        threading.Thread(target=serve, args=(sock, number, max_streams), daemon=True).start()


main()
