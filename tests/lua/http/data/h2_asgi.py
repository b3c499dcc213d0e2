"""Hypercorn (Debian python3-hypercorn) serving a small ASGI app for
tests/lua/http/h2_client_hypercorn.lua: on PORT, over TLS with CERT and
KEY when given (ALPN h2 and http/1.1), else in cleartext (h2c by prior
knowledge). Usage: h2_asgi.py PORT [CERT KEY]. Paths:
  /hello    'hello from hypercorn'
  /client   the client's port (one per connection)
  /version  the request's HTTP version
  /echo     the request's body
  /quit     the server stops"""
import asyncio
import logging
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config

stop = None


async def app(scope, receive, send):
    if scope['type'] != 'http':
        return
    body = b''
    while True:
        m = await receive()
        body += m.get('body', b'')
        if not m.get('more_body'):
            break
    path = scope['path']
    if path == '/hello':
        out = b'hello from hypercorn'
    elif path == '/client':
        out = str(scope['client'][1]).encode()
    elif path == '/version':
        out = scope['http_version'].encode()
    elif path == '/echo':
        out = body
    elif path == '/quit':
        out = b'bye'
        asyncio.get_running_loop().call_later(0.1, stop.set)
    else:
        out = b'no'
    await send({'type': 'http.response.start', 'status': 200,
                'headers': [(b'content-type', b'text/plain'),
                            (b'content-length', str(len(out)).encode())]})
    await send({'type': 'http.response.body', 'body': out})


async def main():
    global stop
    stop = asyncio.Event()
    cfg = Config()
    cfg.bind = ['127.0.0.1:' + sys.argv[1]]
    if len(sys.argv) > 3:
        cfg.certfile, cfg.keyfile = sys.argv[2], sys.argv[3]
    logging.disable(logging.CRITICAL)
    await serve(app, cfg, shutdown_trigger=stop.wait)


asyncio.run(main())
