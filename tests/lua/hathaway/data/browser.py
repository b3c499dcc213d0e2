#!/usr/bin/env python3
"""Drive headless Chromium through examples/hathaway.lua's pages.

usage: browser.py CHROMIUM URL PROFILE_DIR

Speaks the DevTools protocol over --remote-debugging-pipe (JSON messages
ending in NUL, written to Chromium's fd 3 and read from its fd 4), so no
port is opened besides the server under test. Loads URL, types a name into
the form, clicks its button, then follows the pattern-route link, and
prints what each page shows as `key<TAB>value` lines for the Lua test to
check. Only the standard library; ends by itself (DEADLINE).
"""
import fcntl
import json
import os
import select
import subprocess
import sys
import time

DEADLINE = time.monotonic() + 45
NAME = 'Ada & <Lovelace> 100%'


class Browser:
    def __init__(self, chromium, profile, flags=()):
        to_r, self.w = os.pipe()
        self.r, from_w = os.pipe()
        # Above the fds the child will get, so dup2 to 3 and 4 cannot
        # clobber one of them.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_r, from_w)]
        os.close(to_r)
        os.close(from_w)

        def fds():
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.log = open(os.path.join(profile, 'chromium.log'), 'wb')
        self.proc = subprocess.Popen(
            [chromium, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             '--disable-dev-shm-usage', '--disable-extensions', '--remote-debugging-pipe',
             '--user-data-dir=' + profile, *flags, 'about:blank'],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            preexec_fn=fds, pass_fds=(3, 4))
        for fd in high:
            os.close(fd)
        self.buf = b''
        self.next_id = 0
        self.events = []
        self.session = None

    def recv(self):
        """The next message from Chromium."""
        while b'\0' not in self.buf:
            left = DEADLINE - time.monotonic()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise SystemExit('browser.py: no answer from chromium in time')
            data = os.read(self.r, 65536)
            if not data:
                raise SystemExit('browser.py: chromium closed the pipe (see chromium.log)')
            self.buf += data
        msg, self.buf = self.buf.split(b'\0', 1)
        return json.loads(msg)

    def call(self, method, **params):
        """Send a command (to the page's session once attached); its result."""
        self.next_id += 1
        msg = {'id': self.next_id, 'method': method, 'params': params}
        if self.session and not method.startswith('Target.'):
            msg['sessionId'] = self.session
        os.write(self.w, json.dumps(msg).encode() + b'\0')
        while True:
            m = self.recv()
            if m.get('id') == self.next_id:
                if 'error' in m:
                    raise SystemExit(f'browser.py: {method}: {m["error"]}')
                return m['result']
            if 'method' in m:
                self.events.append(m)

    def wait_event(self, method):
        """Wait for an event of the page (events seen earlier count)."""
        while True:
            for i, m in enumerate(self.events):
                if m['method'] == method:
                    del self.events[i]
                    return m
            m = self.recv()
            if 'method' in m:
                self.events.append(m)

    def wait_load(self, path):
        """Wait until the page at path has loaded (a load event of the
        page before it, e.g. about:blank, does not count)."""
        while True:
            self.wait_event('Page.loadEventFired')
            if self.eval('location.pathname + " " + document.readyState') == path + ' complete':
                return

    def eval(self, expr):
        r = self.call('Runtime.evaluate', expression=expr, returnByValue=True)
        if 'exceptionDetails' in r:
            raise SystemExit(f'browser.py: {expr}: {r["exceptionDetails"]}')
        return r['result'].get('value')

    def click(self, selector):
        """A real mouse click in the middle of the element."""
        box = self.eval(
            'JSON.stringify(document.querySelector(%s).getBoundingClientRect())' % json.dumps(selector))
        box = json.loads(box)
        x, y = box['x'] + box['width'] / 2, box['y'] + box['height'] / 2
        for kind in ('mousePressed', 'mouseReleased'):
            self.call('Input.dispatchMouseEvent', type=kind, x=x, y=y, button='left', clickCount=1)

    def close(self):
        try:
            self.call('Browser.close')
        except SystemExit:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main():
    chromium, url, profile = sys.argv[1:4]
    b = Browser(chromium, profile)
    try:
        target = b.call('Target.createTarget', url='about:blank')['targetId']
        b.session = b.call('Target.attachToTarget', targetId=target, flatten=True)['sessionId']
        b.call('Page.enable')

        b.call('Page.navigate', url=url)
        b.wait_load('/')
        print('title\t' + b.eval('document.title'))
        print('heading\t' + b.eval('document.querySelector("h1").textContent'))

        b.eval('document.getElementById("name").focus()')
        b.call('Input.insertText', text=NAME)
        b.events.clear()
        b.click('#send')
        b.wait_load('/greet')
        print('path\t' + b.eval('location.pathname'))
        print('greeting\t' + b.eval('document.getElementById("greeting").textContent'))

        b.call('Page.navigate', url=url)
        b.wait_load('/')
        b.click('a')
        b.wait_load('/square/12')
        print('path\t' + b.eval('location.pathname'))
        print('square\t' + b.eval('document.getElementById("square").textContent'))
    finally:
        b.close()


if __name__ == '__main__':
    main()
