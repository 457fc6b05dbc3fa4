"""The /ui page in a real browser (Debian's chromium driven by playwright), run by
crates/raftmq/tests/ui.rs: open the page on a follower, report the leader it names, wait
for the test to kill -9 that leader, then see the page name a new leader and show the old
one down within 3 s.

Protocol on stdin/stdout: prints `LEADER <id>` once the page names a leader; reads a line
(`KILLED`) when the leader is dead; prints `NEW-LEADER <id> AFTER <seconds>` and exits 0, or
prints the reason and exits 1. With --screenshot PATH, saves the page as the old leader shows
down (mid-election) there.
"""

import argparse
import sys
import time

from playwright.sync_api import sync_playwright

CARD = '.member[data-node-id="{}"]'


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--screenshot")
    parser.add_argument("--within", type=float, default=3.0)
    args = parser.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        hosts = set()
        page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
        page.goto(args.url)
        page.wait_for_selector('.member[data-role="Leader"]', timeout=10000)
        leader = page.get_attribute('.member[data-role="Leader"]', "data-node-id")
        print(f"LEADER {leader}", flush=True)
        sys.stdin.readline()
        killed = time.monotonic()
        shot = False
        while time.monotonic() - killed < args.within:
            old = page.get_attribute(CARD.format(leader), "data-role")
            new = page.locator('.member[data-role="Leader"]')
            if args.screenshot and not shot and old == "Down":
                page.screenshot(path=args.screenshot, full_page=True)
                shot = True
            if old == "Down" and new.count() == 1:
                new_id = new.get_attribute("data-node-id")
                line = page.text_content("#leader")
                if new_id != leader and f"node {new_id}" in line:
                    print(f"NEW-LEADER {new_id} AFTER {time.monotonic() - killed:.2f}", flush=True)
                    print(f"HOSTS {' '.join(sorted(hosts))}", flush=True)
                    if args.screenshot:
                        page.screenshot(path=args.screenshot.replace(".png", "-after.png"), full_page=True)
                    browser.close()
                    return 0
            time.sleep(0.05)
        roles = page.eval_on_selector_all(
            ".member", "els => els.map(e => [e.dataset.nodeId, e.dataset.role])"
        )
        print(f"FAILED within {args.within} s the page shows {roles}", flush=True)
        browser.close()
        return 1


if __name__ == "__main__":
    sys.exit(main())
