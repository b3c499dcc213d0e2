# A WebSocket peer for tests/lua/websocket/python.lua, with Python's
# websockets (Debian python3-websockets):
#   ws_peer.py client URL   run the checks against a lem echo server
#   ws_peer.py server       an echo server; prints its port, runs until killed
import asyncio
import sys

import websockets


async def client(url):
    async with websockets.connect(url, subprotocols=['chat', 'superchat'],
                                  origin='http://example.test', max_size=None,
                                  extra_headers={'X-Test': 'yes'}, compression=None) as ws:
        assert ws.subprotocol == 'superchat', ws.subprotocol
        await ws.send('hello')
        assert await ws.recv() == 'hello'
        blob = bytes(range(256)) * 300
        await ws.send(blob)
        assert await ws.recv() == blob
        big = 'é€' * 200000
        await ws.send(big)
        assert await ws.recv() == big
        # Fragments, one of them cut inside a character.
        await ws.send(['frag', 'mented \xe9', ' \u20ac'])
        assert await ws.recv() == 'fragmented \xe9 \u20ac'
        pong = await ws.ping(b'are you there')
        await asyncio.wait_for(pong, 5)
        await ws.send('origin?')
        assert await ws.recv() == 'http://example.test'
        await ws.send('header?')
        assert await ws.recv() == 'yes'
        await ws.close(4001, 'bye from python')
        assert ws.close_code == 4001, ws.close_code
    # The server closes.
    async with websockets.connect(url, compression=None) as ws:
        assert ws.subprotocol is None
        await ws.send('close-me')
        try:
            await ws.recv()
            raise AssertionError('no close')
        except websockets.ConnectionClosed as e:
            assert e.rcvd.code == 4002 and e.rcvd.reason == 'server says bye', e
    # permessage-deflate (websockets offers it by default).
    async with websockets.connect(url, max_size=None) as ws:
        names = [type(e).__name__ for e in ws.extensions]
        assert names == ['PerMessageDeflate'], names
        for msg in ['deflated ' * 1000, 'x', '', 'żółw ' * 20000]:
            await ws.send(msg)
            assert await ws.recv() == msg
        blob = bytes(range(256)) * 4000
        await ws.send(blob)
        assert await ws.recv() == blob
        await ws.send(['compressed ', 'in ', 'fragments \u20ac'])
        assert await ws.recv() == 'compressed in fragments \u20ac'
    # No context takeover, asked by the client.
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    f = ClientPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True)
    async with websockets.connect(url, extensions=[f]) as ws:
        assert len(ws.extensions) == 1
        for i in range(3):
            await ws.send('again and again ' * 50)
            assert await ws.recv() == 'again and again ' * 50
    print('ok')


async def echo(ws, path=None):
    try:
        async for msg in ws:
            if msg == 'close-me':
                await ws.close(4003, 'python says bye')
            elif msg == 'protocol?':
                await ws.send(ws.subprotocol or '')
            elif msg == 'header?':
                await ws.send(ws.request_headers.get('X-Test', ''))
            elif msg == 'path?':
                await ws.send(ws.path)
            elif msg == 'ping-me':
                await ws.ping(b'from python')
                await ws.send('pinged')
            else:
                await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def server():
    async with websockets.serve(echo, '127.0.0.1', 0, subprotocols=['v2', 'v1'],
                                max_size=None) as srv:
        print(srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


if sys.argv[1] == 'client':
    asyncio.run(client(sys.argv[2]))
else:
    asyncio.run(server())
