"""httpx (async) as bench/client.sh's peer: python3 client_httpx.py URL [N [C]].

C tasks share one AsyncClient (a pool of C keep-alive connections) and
send N GET requests in all, each reading the whole body; prints
requests, seconds and requests per second, tab-separated.
"""
import asyncio
import sys
import time

import httpx


async def main(url, n, c):
    left = n
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    async with httpx.AsyncClient(limits=limits) as client:
        async def worker():
            nonlocal left
            while left > 0:
                left -= 1
                r = await client.get(url)
                r.raise_for_status()
                r.read()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(c)))
        dt = time.perf_counter() - t0
    print(f"{n}\t{dt:.3f}\t{n / dt:.0f}")


if __name__ == "__main__":
    url = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    c = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    asyncio.run(main(url, n, c))
