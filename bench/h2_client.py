"""The httpx side of bench/h2_client.sh: N GET requests to an h2c server
(prior knowledge: http1=False) on PORT from CONC asyncio tasks sharing
one httpx.AsyncClient, so one HTTP/2 connection; prints requests per
second. usage: h2_client.py PORT N CONC"""
import asyncio
import sys
import time

import httpx


async def main(port, n, conc):
    url = 'http://127.0.0.1:%d/' % port
    left = [n]
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(http1=False, http2=True, limits=limits) as c:
        assert (await c.get(url)).http_version == 'HTTP/2'

        async def worker():
            while left[0] > 0:
                left[0] -= 1
                r = await c.get(url)
                assert r.content == b'Hello, World!\n'

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        print(int(n / (time.perf_counter() - start)))


asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
