#!/usr/bin/env python3
"""Drive headless Chromium through examples/websocket-chat.lua's page.

usage: ws_browser.py CHROMIUM URL PROFILE_DIR

With hathaway/data/browser.py's Browser (the DevTools protocol over a
pipe): loads the page, waits until its WebSocket is open, sends a message
through the page's form, waits until the chat log holds the line the Lua
test sends in answer ('guest1: hi chromium'), and prints the log's lines.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'hathaway', 'data'))
import browser  # noqa: E402


def wait_for(b, expr, what):
    while time.monotonic() < browser.DEADLINE:
        if b.eval(expr):
            return
        time.sleep(0.05)
    raise SystemExit('ws_browser.py: gave up waiting for ' + what)


def main():
    chromium, url, profile = sys.argv[1:4]
    b = browser.Browser(chromium, profile)
    try:
        target = b.call('Target.createTarget', url='about:blank')['targetId']
        b.session = b.call('Target.attachToTarget', targetId=target, flatten=True)['sessionId']
        b.call('Page.enable')
        b.call('Page.navigate', url=url)
        b.wait_load('/')
        wait_for(b, 'document.title === "lem chat: connected"', 'the WebSocket to open')
        b.eval('document.getElementById("text").focus()')
        b.call('Input.insertText', text='hello from chromium')
        b.eval('document.getElementById("form").requestSubmit()')
        wait_for(b, 'document.getElementById("log").textContent.includes("guest1: hi chromium")',
                 'the answer to arrive')
        for line in b.eval('Array.from(document.querySelectorAll("#log li")).map(e => e.textContent).join("\\n")').split('\n'):
            print('log\t' + line)
    finally:
        b.close()


if __name__ == '__main__':
    main()
