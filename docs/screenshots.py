"""Take desktop (1366x900) and phone (390x844) screenshots of pages of a running server.

    .venv/bin/python docs/screenshots.py --base http://127.0.0.1:8000 --user reviewer \
        inbox=/inbox/ item=/inbox/42/

Each NAME=PATH becomes docs/screenshots/NAME-desktop.png and NAME-phone.png. Uses Debian's
Chromium through Playwright (no browser download).

The review-work and agreement shots of docs/screenshots.md, on `make run`'s demo data (a
second review id of `reviewer`'s, and a periodic-review batch id of the support queue, from
the inbox tabs):

    .venv/bin/python docs/screenshots.py --user reviewer review-work=/inbox/?tab=second \
        second-review=/inbox/second/<id>/ inbox-periodic-review=/inbox/periodic-review/<id>/
    .venv/bin/python docs/screenshots.py --user manager metrics-agreement=/metrics/agreement/

The shots of a request that allows other decisions than approve, modify and reject, after
submitting them with `allowed_decisions` (docs/api.md): a question (respond only), the
Respond dialog of a tool call that can be answered (`--press s` opens it), and a request
answered that way:

    .venv/bin/python docs/screenshots.py --user reviewer item-question=/inbox/<id>/ \
        item-responded=/inbox/<id>/
    .venv/bin/python docs/screenshots.py --user reviewer --press s item-respond=/inbox/<id>/

The damage-at-stake shots, on `make run`'s demo data (Refunds' block, and its editor's fieldset):

    .venv/bin/python docs/screenshots.py --user admin \
        --scroll-to "section.autonomy:has(.damage-over)" \
        --phone-scroll-to "section.autonomy:has(.damage-over) .damage" \
        metrics-autonomy=/metrics/autonomy/
    .venv/bin/python docs/screenshots.py --user admin --scroll-to "#cost" \
        policy-edit=/policies/refunds/edit/

The reviewers shot, after `manage.py shell < docs/rubber_stamp_demo.py` (a batch rubber-stamper):

    .venv/bin/python docs/screenshots.py --user manager metrics-reviewers=/metrics/reviewers/
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
SIZES = {"desktop": (1366, 900), "phone": (390, 844)}
OUT = Path(__file__).resolve().parent / "screenshots"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--user", help="log in as this demo user first")
    parser.add_argument("--password", default="hitl-demo")
    parser.add_argument("--full-page", action="store_true")
    parser.add_argument("--press", help="press this key on each page first (opens a dialog)")
    parser.add_argument(
        "--scroll-to", help="scroll this CSS selector to the top of the view, below the header"
    )
    parser.add_argument("--phone-scroll-to", help="the same on the phone (default: --scroll-to)")
    parser.add_argument(
        "--print", action="store_true", help="emulate print media (what Save as PDF shows)"
    )
    parser.add_argument("shots", nargs="+", metavar="NAME=PATH")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for size, (width, height) in SIZES.items():
            context = browser.new_context(
                viewport={"width": width, "height": height},
                device_scale_factor=1,
                is_mobile=size == "phone",
                has_touch=size == "phone",
            )
            page = context.new_page()
            if args.print:
                page.emulate_media(media="print")
            if args.user:
                page.goto(f"{args.base}/login/")
                page.fill("input[name=username]", args.user)
                page.fill("input[name=password]", args.password)
                page.click("button[type=submit]")
                page.wait_for_load_state("networkidle")
            for shot in args.shots:
                name, path = shot.split("=", 1)
                page.goto(args.base + path)
                page.wait_for_load_state("networkidle")
                target_selector = (size == "phone" and args.phone_scroll_to) or args.scroll_to
                if target_selector:
                    page.locator(target_selector).first.evaluate(
                        "(el) => { el.scrollIntoView(); window.scrollBy(0, -64); }"
                    )
                if args.press:
                    page.keyboard.press(args.press)
                    page.wait_for_timeout(300)  # the dialog's fade-in
                target = OUT / f"{name}-{size}.png"
                page.screenshot(path=str(target), full_page=args.full_page)
                print(target)
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
