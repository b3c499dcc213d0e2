#!/usr/bin/env python3
"""Drive headless Chromium through http/data/browser_upload.lua's pages.

usage: browser_upload.py CHROMIUM URL PROFILE_DIR FILE

Loads URL (which sets two cookies), types a note, picks FILE in the file
input (DOM.setFileInputFiles, as a user's file dialog would), submits the
form (a multipart/form-data POST with the cookies) and prints the result
page's `key<TAB>value` lines, then `document_cookie<TAB>...` (the script's
view: the HttpOnly cookie must not be in it). The DevTools driver is
hathaway/data/browser.py's.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'hathaway', 'data'))
from browser import Browser  # noqa: E402

NOTE = 'caf\u00e9 & "quotes"'


def main():
    chromium, url, profile, path = sys.argv[1:5]
    b = Browser(chromium, profile)
    try:
        target = b.call('Target.createTarget', url='about:blank')['targetId']
        b.session = b.call('Target.attachToTarget', targetId=target, flatten=True)['sessionId']
        b.call('Page.enable')
        b.call('DOM.enable')

        b.call('Page.navigate', url=url)
        b.wait_load('/')
        print('document_cookie\t' + b.eval('document.cookie'))

        b.eval('document.getElementById("note").focus()')
        b.call('Input.insertText', text=NOTE)
        root = b.call('DOM.getDocument')['root']['nodeId']
        node = b.call('DOM.querySelector', nodeId=root, selector='#file')['nodeId']
        b.call('DOM.setFileInputFiles', nodeId=node, files=[path])
        b.events.clear()
        b.click('#send')
        b.wait_load('/result')
        print(b.eval('document.getElementById("result").textContent'), end='')
    finally:
        b.close()


if __name__ == '__main__':
    main()
