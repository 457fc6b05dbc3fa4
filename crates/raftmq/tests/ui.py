"""The /ui page in a real browser (Debian's chromium driven by playwright), run by
crates/raftmq/tests/ui.rs: open the page on a follower, report the leader it names, wait
for the test to kill -9 that leader, then see the page name a new leader and show the old
one down within 3 s.

Protocol on stdin/stdout: prints `LEADER <id>` once the page names a leader; reads a line
(`KILLED`) when the leader is dead; prints `NEW-LEADER <id> AFTER <seconds>`, then, once the
timeline shows the new leader's election won, `TIMELINE-NODES <ids>` (the members the timeline
has events of), and exits 0; or prints the reason and exits 1. With --screenshot PATH, saves the page as the old leader shows
down (mid-election) there.

With --isolate (a `raftmq dev` cluster): prints `LEADER <id>`, clicks isolate on the leader's
card, and prints `NEW-LEADER <id> AFTER <seconds>` once the page names another leader and
marks the old one isolated; or the reason, exit 1.
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
    parser.add_argument("--isolate", action="store_true")
    args = parser.parse_args()
    if args.isolate:
        return isolate(args)
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
                    # The timeline merges every member's events: the winner's own election
                    # shows up whichever node serves the page.
                    won = f'#timeline li[data-node="{new_id}"][data-kind="election"]'
                    page.wait_for_selector(f"{won} >> text=won", timeout=5000)
                    nodes = page.eval_on_selector_all(
                        "#timeline li", "els => [...new Set(els.map(e => e.dataset.node))]"
                    )
                    print(f"TIMELINE-NODES {' '.join(sorted(nodes))}", flush=True)
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


def isolate(args):
    """On a dev cluster: click isolate on the leader's card, then see the card marked isolated
    and another member named leader."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(args.url)
        page.wait_for_selector('.member[data-role="Leader"] button[data-action="isolate"]', timeout=10000)
        leader = page.text_content("#leader")
        old = page.get_attribute("#leader", "data-leader")
        print(f"LEADER {old}", flush=True)
        note = page.text_content("#controls-note")
        if "simulate" not in note or "real processes" not in note:
            print(f"FAILED the controls note does not say what is real: {note}", flush=True)
            return 1
        page.click(f'{CARD.format(old)} button[data-action="isolate"]')
        clicked = time.monotonic()
        while time.monotonic() - clicked < args.within:
            leader = page.get_attribute("#leader", "data-leader")
            isolated = page.get_attribute(CARD.format(old), "data-isolated")
            marked = "isolated (simulated)" in (page.text_content(CARD.format(old)) or "")
            if leader and leader != old and isolated == "true" and marked:
                print(f"NEW-LEADER {leader} AFTER {time.monotonic() - clicked:.2f}", flush=True)
                if args.screenshot:
                    page.screenshot(path=args.screenshot, full_page=True)
                browser.close()
                return 0
            time.sleep(0.05)
        roles = page.eval_on_selector_all(
            ".member", "els => els.map(e => [e.dataset.nodeId, e.dataset.role, e.dataset.isolated])"
        )
        print(f"FAILED within {args.within} s the page shows {roles}", flush=True)
        browser.close()
        return 1


if __name__ == "__main__":
    sys.exit(main())
