"""A hostile (or merely careful) HTTP/2 client for tests/lua/http/h2_*.lua,
speaking raw frames (Debian python3-h2's hyperframe and hpack) to a
cleartext server by prior knowledge. Usage: h2_peer.py CASE PORT [ARG];
prints what it saw, one line per fact, for the Lua test to compare."""
import socket
import sys

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, ExtensionFrame, Frame,
                              GoAwayFrame, HeadersFrame, PingFrame,
                              PriorityFrame, RstStreamFrame, SettingsFrame,
                              WindowUpdateFrame)

PREFACE = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'


class Peer:
    def __init__(self, port, settings=None):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=10)
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.buf = b''
        s = SettingsFrame(0)
        s.settings = settings or {}
        self.sock.sendall(PREFACE + s.serialize())

    def send(self, *frames):
        try:
            self.sock.sendall(b''.join(f.serialize() for f in frames))
            return True
        except OSError:
            return False

    def headers(self, sid, path, end=True, method='GET'):
        f = HeadersFrame(sid)
        f.data = self.enc.encode([(':method', method), (':scheme', 'http'),
                                  (':authority', 'localhost'), (':path', path)])
        f.flags.add('END_HEADERS')
        if end:
            f.flags.add('END_STREAM')
        return f

    def frame(self):
        """The next frame, or None when the server closed."""
        while True:
            if len(self.buf) >= 9:
                f, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
                if len(self.buf) >= 9 + length:
                    f.parse_body(memoryview(self.buf[9:9 + length]))
                    self.buf = self.buf[9 + length:]
                    if isinstance(f, SettingsFrame) and 'ACK' not in f.flags:
                        ack = SettingsFrame(0)
                        ack.flags.add('ACK')
                        self.send(ack)
                    if isinstance(f, PingFrame) and 'ACK' not in f.flags:
                        ack = PingFrame(0, opaque_data=f.opaque_data)
                        ack.flags.add('ACK')
                        self.send(ack)
                    if isinstance(f, HeadersFrame):
                        f.decoded = self.dec.decode(f.data)
                    return f
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                data = b''
            if not data:
                return None
            self.buf += data


def until_goaway(p):
    """Read frames until GOAWAY (its error code) or the end ('closed')."""
    while True:
        f = p.frame()
        if f is None:
            return 'closed'
        if isinstance(f, GoAwayFrame):
            return 'goaway %d' % f.error_code


def settings(port, _):
    p = Peer(port)
    f = p.frame()
    print('max_concurrent_streams %s' % f.settings.get(SettingsFrame.MAX_CONCURRENT_STREAMS))
    print('max_header_list_size %s' % f.settings.get(SettingsFrame.MAX_HEADER_LIST_SIZE))


def rapid_reset(port, n):
    """Open n streams, resetting each at once (CVE-2023-44487)."""
    p = Peer(port)
    sent = 0
    for i in range(int(n)):
        sid = 2 * i + 1
        if not p.send(p.headers(sid, '/slow'), RstStreamFrame(sid, error_code=8)):
            break
        sent += 1
    print(until_goaway(p))
    print('stopped early' if sent < int(n) else 'all sent')


def many_streams(port, n):
    """Open n streams at once, beyond the server's cap: the extra ones
    are refused (RST_STREAM REFUSED_STREAM); the others are answered."""
    p = Peer(port)
    for i in range(int(n)):
        p.send(p.headers(2 * i + 1, '/slow'))
    ok = refused = 0
    while ok + refused < int(n):
        f = p.frame()
        if f is None:
            break
        if isinstance(f, HeadersFrame) and (':status', '200') in f.decoded:
            ok += 1
        elif isinstance(f, RstStreamFrame):
            refused += 1 if f.error_code == 7 else 0
        elif isinstance(f, GoAwayFrame):
            print('goaway %d' % f.error_code)
            break
    print('answered %d refused %d' % (ok, refused))


def continuation(port, n):
    """A HEADERS frame without END_HEADERS, then CONTINUATION frames of
    junk that never end (CVE-2024-27316)."""
    p = Peer(port)
    f = HeadersFrame(1)
    f.data = p.enc.encode([(':method', 'GET'), (':scheme', 'http'), (':path', '/')])
    if not p.send(f):
        print('closed')
        return
    junk = p.enc.encode([('x-junk', 'y' * 8000)])
    sent = 0
    for _ in range(int(n)):
        c = ContinuationFrame(1)
        c.data = junk
        if not p.send(c):
            break
        sent += 1
    print(until_goaway(p))
    print('stopped early' if sent < int(n) else 'all sent')


def window(port, path):
    """A window that never opens: initial window 0; the response's head
    comes, no body; then the client goes away."""
    p = Peer(port, {SettingsFrame.INITIAL_WINDOW_SIZE: 0})
    p.send(p.headers(1, path))
    while True:
        f = p.frame()
        if f is None or isinstance(f, DataFrame) and f.data:
            print('data before the window opened' if f else 'closed')
            return
        if isinstance(f, HeadersFrame):
            print('head ' + dict(f.decoded).get(':status'))
            break
    # A PING round trip: the server had every chance to send.
    p.send(PingFrame(0, opaque_data=b'12345678'))
    while True:
        f = p.frame()
        if f is None or isinstance(f, PingFrame):
            break
        if isinstance(f, DataFrame) and f.data:
            print('data before the window opened')
            return
    print('no data')
    sys.stdout.flush()
    p.sock.close()


def idle(port, _):
    """A connection that opens no stream: GOAWAY after the server's
    timeout, then the end."""
    p = Peer(port)
    print(until_goaway(p))
    while p.frame() is not None:
        pass
    print('closed')


def drain(port, _):
    """A slow request, then one that starts a graceful stop: GOAWAY comes,
    and the slow one is still answered whole."""
    p = Peer(port)
    p.send(p.headers(1, '/slow'))
    p.send(p.headers(3, '/stop'))
    body = b''
    goaway = None
    ended = set()
    while len(ended) < 2:
        f = p.frame()
        if f is None:
            break
        if isinstance(f, GoAwayFrame):
            goaway = 'goaway %d last %d' % (f.error_code, f.last_stream_id)
        if isinstance(f, DataFrame) and f.stream_id == 1:
            body += f.data
            if f.data:
                p.send(WindowUpdateFrame(0, window_increment=len(f.data)),
                       WindowUpdateFrame(1, window_increment=len(f.data)))
        if isinstance(f, (DataFrame, HeadersFrame)) and 'END_STREAM' in f.flags:
            ended.add(f.stream_id)
    print(goaway)
    print('slow body %s' % body.decode())
    # A new stream after GOAWAY is not served.
    p.send(p.headers(5, '/late'))
    while True:
        f = p.frame()
        if f is None:
            print('closed')
            break
        if isinstance(f, HeadersFrame) and f.stream_id == 5:
            print('late answered')
            break


def outcome(p, sid):
    """How the server took what was sent: 'goaway CODE', 'reset CODE'
    (stream sid), 'status N' (an answer on sid), 'pong' or 'closed'."""
    while True:
        f = p.frame()
        if f is None:
            return 'closed'
        if isinstance(f, GoAwayFrame):
            return 'goaway %d' % f.error_code
        if isinstance(f, RstStreamFrame) and f.stream_id == sid:
            return 'reset %d' % f.error_code
        if isinstance(f, HeadersFrame) and f.stream_id == sid:
            return 'status ' + dict(f.decoded).get(':status', '?')
        if isinstance(f, PingFrame) and 'ACK' in f.flags:
            return 'pong'


def raw(p, ftype, flags, sid, payload):
    """Send a frame made by hand (for what hyperframe will not make)."""
    head = len(payload).to_bytes(3, 'big') + bytes([ftype, flags]) + sid.to_bytes(4, 'big')
    p.sock.sendall(head + payload)


def conformance(port, _):
    """Cases in the manner of h2spec's, from RFC 9113 and RFC 7541, each
    on a connection of its own: what the server answered."""
    def case(name, act, sid=1):
        p = Peer(port)
        act(p)
        print('%s: %s' % (name, outcome(p, sid)))
        p.sock.close()

    def headers(fields, sid=1, end=True):
        def act(p):
            f = HeadersFrame(sid)
            f.data = p.enc.encode(fields)
            f.flags.add('END_HEADERS')
            if end:
                f.flags.add('END_STREAM')
            p.send(f)
        return act
    base = [(':method', 'GET'), (':scheme', 'http'), (':authority', 'x'), (':path', '/')]
    # 4.1: an unknown frame type is ignored; the request after it is served.
    case('unknown frame type', lambda p: (raw(p, 0x7f, 0, 0, b'junk'), headers(base)(p)))
    # 4.2: a frame larger than SETTINGS_MAX_FRAME_SIZE (16384).
    case('oversized frame', lambda p: raw(p, 0x0, 0, 1, b'x' * 16385))
    # 5.1.1: a client stream with an even number.
    case('even stream id', headers(base, sid=2), sid=2)
    # 6.1: DATA on stream 0.
    case('DATA on stream 0', lambda p: raw(p, 0x0, 0, 0, b'x'))
    # 6.1: DATA on an idle stream.
    case('DATA on an idle stream', lambda p: raw(p, 0x0, 0, 5, b'x'), sid=5)
    # 6.3: PRIORITY depending on itself.
    case('PRIORITY on itself', lambda p: p.send(PriorityFrame(1, depends_on=1)))
    # 6.4: RST_STREAM on an idle stream.
    case('RST_STREAM on an idle stream', lambda p: p.send(RstStreamFrame(3, error_code=0)), sid=3)
    # 6.5: SETTINGS with a length that is not a multiple of 6.
    case('SETTINGS of bad length', lambda p: raw(p, 0x4, 0, 0, b'\0' * 5))
    # 6.5.2: SETTINGS_ENABLE_PUSH other than 0 or 1.
    case('ENABLE_PUSH 2', lambda p: raw(p, 0x4, 0, 0, b'\x00\x02\x00\x00\x00\x02'))
    # 6.5.2: SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1.
    case('window size too large', lambda p: raw(p, 0x4, 0, 0, b'\x00\x04\x80\x00\x00\x00'))
    # 6.7: PING of a length other than 8.
    case('PING of bad length', lambda p: raw(p, 0x6, 0, 0, b'1234567'))
    # 6.7: a PING is answered.
    case('PING', lambda p: p.send(PingFrame(0, opaque_data=b'abcdefgh')))
    # 6.9: WINDOW_UPDATE with increment 0 on the connection.
    case('WINDOW_UPDATE 0', lambda p: raw(p, 0x8, 0, 0, b'\0\0\0\0'))
    # 6.9.1: a window past 2^31-1.
    case('window overflow', lambda p: p.send(WindowUpdateFrame(0, window_increment=2**31 - 1)))
    # 6.10: CONTINUATION without a HEADERS before it.
    case('lone CONTINUATION', lambda p: raw(p, 0x9, 0x4, 1, b''))
    # 8.2: an upper-case field name.
    case('upper-case field name', headers(base + [('X-Upper', 'a')]))
    # 8.2.2: a connection-specific field.
    case('connection field', headers(base + [('connection', 'keep-alive')]))
    # 8.2.2: TE other than trailers.
    case('te: gzip', headers(base + [('te', 'gzip')]))
    # 8.3: a pseudo-header after a regular field.
    case('pseudo after regular', headers([(':method', 'GET'), ('x', 'y'), (':scheme', 'http'), (':path', '/')]))
    # 8.3.1: no :path.
    case('no :path', headers([(':method', 'GET'), (':scheme', 'http'), (':authority', 'x')]))
    # 8.3.1: an unknown pseudo-header.
    case('unknown pseudo-header', headers(base + [(':foo', 'bar')]))
    # 8.1.1: content-length that is not the body's.
    def bad_length(p):
        headers([(':method', 'POST')] + base[1:] + [('content-length', '5')], end=False)(p)
        d = DataFrame(1, data=b'abc')
        d.flags.add('END_STREAM')
        p.send(d)
    case('content-length mismatch', bad_length)
    # RFC 7541 §4.2: a dynamic table size update above the settings' size.
    case('HPACK table size update too large', lambda p: raw(p, 0x1, 0x5, 1, b'\x3f\xe2\x1f'))
    # RFC 7541 §2.3.3: an index beyond both tables.
    case('HPACK index out of range', lambda p: raw(p, 0x1, 0x5, 1, b'\xff\x7f'))


if __name__ == '__main__':
    globals()[sys.argv[1]](int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else '0')
