"""HTTP/1.1 clients that ask for `Upgrade: h2c` (RFC 7540 §3.2), for
tests/lua/http/h2_upgrade.lua. Usage: h2c_upgrade.py CASE PORT; prints
what it saw, one line per fact.

  lib     python-h2's own client: initiate_upgrade_connection, the answer
          on stream 1, then a request of its own (stream 3)
  window  raw frames: HTTP2-Settings sets INITIAL_WINDOW_SIZE 10 and the
          SETTINGS frame after the preface sets nothing, so stream 1's
          body comes 10 bytes first (the header's settings apply), and
          exactly one SETTINGS ACK comes back (for the frame)
  second  the upgrade on the second request of a keep-alive connection
"""
import base64
import socket
import sys

import h2.config
import h2.connection
import h2.events
from hyperframe.frame import (DataFrame, Frame, HeadersFrame, SettingsFrame,
                              WindowUpdateFrame)
import hpack

PREFACE = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'


def connect(port):
    return socket.create_connection(('127.0.0.1', port), timeout=10)


def upgrade_request(path, settings):
    return ('GET %s HTTP/1.1\r\nHost: localhost\r\n'
            'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n'
            'HTTP2-Settings: %s\r\n\r\n' % (path, settings)).encode()


def read_head(sock, buf=b''):
    """The HTTP/1.1 head the server answered and the bytes after it."""
    while b'\r\n\r\n' not in buf:
        data = sock.recv(65536)
        if not data:
            break
        buf += data
    head, _, rest = buf.partition(b'\r\n\r\n')
    return head.decode('latin-1'), rest


def lib(port):
    sock = connect(port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    settings = conn.initiate_upgrade_connection().decode()
    sock.sendall(upgrade_request('/info', settings))
    head, rest = read_head(sock)
    print(head.split('\r\n')[0])
    sock.sendall(conn.data_to_send())
    bodies, done, asked = {}, set(), False
    data = rest
    while len(done) < 2:
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                bodies.setdefault(ev.stream_id, [dict(ev.headers)[b':status'].decode(), b''])
            elif isinstance(ev, h2.events.DataReceived):
                bodies[ev.stream_id][1] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                done.add(ev.stream_id)
        if 1 in done and not asked:
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(':method', 'GET'), (':scheme', 'http'),
                                    (':authority', 'localhost'), (':path', '/info?again')],
                              end_stream=True)
            asked = True
        sock.sendall(conn.data_to_send())
        if len(done) < 2:
            data = sock.recv(65536)
            if not data:
                print('closed')
                break
    for sid in sorted(bodies):
        print(sid, bodies[sid][0], bodies[sid][1].decode())


class Frames:
    def __init__(self, sock, buf):
        self.sock, self.buf = sock, buf

    def next(self):
        while True:
            if len(self.buf) >= 9:
                f, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
                if len(self.buf) >= 9 + length:
                    f.parse_body(memoryview(self.buf[9:9 + length]))
                    self.buf = self.buf[9 + length:]
                    return f
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data


def window(port):
    sock = connect(port)
    # INITIAL_WINDOW_SIZE (0x4) = 10, no padding (base64url).
    setting = base64.urlsafe_b64encode(b'\x00\x04\x00\x00\x00\x0a').rstrip(b'=').decode()
    sock.sendall(upgrade_request('/hundred', setting))
    head, rest = read_head(sock)
    print(head.split('\r\n')[0])
    sock.sendall(PREFACE + SettingsFrame(0).serialize())
    frames = Frames(sock, rest)
    acks, first, total, opened = 0, None, 0, False
    while True:
        f = frames.next()
        if f is None:
            print('closed')
            break
        if isinstance(f, SettingsFrame):
            if 'ACK' in f.flags:
                acks += 1
            else:
                ack = SettingsFrame(0)
                ack.flags.add('ACK')
                sock.sendall(ack.serialize())
        elif isinstance(f, HeadersFrame) and f.stream_id == 1:
            status = dict(hpack.Decoder().decode(f.data)).get(':status')
            print('stream 1', status)
        elif isinstance(f, DataFrame) and f.stream_id == 1:
            if first is None and f.data:
                first = len(f.data)
            total += len(f.data)
            if total >= 10 and not opened:
                # Now open the window: the rest may come.
                opened = True
                sock.sendall(WindowUpdateFrame(1, window_increment=1000).serialize())
            if 'END_STREAM' in f.flags:
                break
    print('first data', first)
    print('total', total)
    print('acks', acks)


def second(port):
    sock = connect(port)
    sock.sendall(b'GET /info HTTP/1.1\r\nHost: localhost\r\n\r\n')
    head, rest = read_head(sock)
    length = int([l for l in head.split('\r\n') if l.lower().startswith('content-length')][0].split(':')[1])
    while len(rest) < length:
        rest += sock.recv(65536)
    print(head.split('\r\n')[0], rest[:length].decode())
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    settings = conn.initiate_upgrade_connection().decode()
    sock.sendall(upgrade_request('/info?second', settings))
    head, rest = read_head(sock, rest[length:])
    print(head.split('\r\n')[0])
    sock.sendall(conn.data_to_send())
    body, data, ended = b'', rest, False
    while not ended:
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                body += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == 1:
                ended = True
        sock.sendall(conn.data_to_send())
        if not ended:
            data = sock.recv(65536)
            if not data:
                print('closed')
                break
    print('stream 1', body.decode())


if __name__ == '__main__':
    {'lib': lib, 'window': window, 'second': second}[sys.argv[1]](int(sys.argv[2]))
