#!/usr/bin/env python3
"""Headless Chromium loading a page over https:// from lem.http.server:
prints the protocol the page came over (performance's nextHopProtocol),
then the bodies of 20 fetches made at once (multiplexed on the page's
connection) and their protocols. Drives the browser with
hathaway/data/browser.py's Browser.

usage: h2_browser.py CHROMIUM URL PROFILE_DIR
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'hathaway', 'data'))
from browser import Browser  # noqa: E402

FETCHES = '''Promise.all(Array.from({length: 20}, (_, i) =>
    fetch('/n/' + i).then(r => r.text()))).then(all => all.join(','))'''


def main():
    chromium, url, profile = sys.argv[1:4]
    b = Browser(chromium, profile, ('--ignore-certificate-errors',))
    try:
        target = b.call('Target.createTarget', url='about:blank')['targetId']
        b.session = b.call('Target.attachToTarget', targetId=target, flatten=True)['sessionId']
        b.call('Page.enable')
        b.call('Page.navigate', url=url)
        b.wait_load('/')
        print('title\t' + b.eval('document.title'))
        print('protocol\t' + b.eval('performance.getEntries()[0].nextHopProtocol'))
        r = b.call('Runtime.evaluate', expression=FETCHES, awaitPromise=True, returnByValue=True)
        print('fetched\t' + r['result'].get('value', repr(r)))
        print('fetch protocols\t' + b.eval(
            'Array.from(new Set(performance.getEntriesByType("resource").map(e => e.nextHopProtocol))).join(",")'))
    finally:
        b.close()


if __name__ == '__main__':
    main()
