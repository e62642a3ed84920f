"""The single-page shop's checkout journey in Playwright, for `siteward bench-checkout`.

The same steps as `fixture_sites::spa_shop::journey` with a screenshot after every step, driving
the system Chromium through `executable_path`. Reads its settings as one JSON line on stdin, then
answers each further line `run` with one JSON line: the run's milliseconds (a fresh context, the
journey, the context closed), or the error that stopped it. Prints `{"ready": …}` first, or
`{"unavailable": …}` when the `playwright` package is not installed.
"""

import json
import re
import sys
import time


def main():
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as error:
        print(json.dumps({"unavailable": str(error)}), flush=True)
        return
    settings = json.loads(sys.stdin.readline())
    base = settings["base_url"].rstrip("/")
    secrets = settings["secrets"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=settings["chromium"], headless=True, args=settings["args"]
        )
        from importlib.metadata import version

        print(json.dumps({"ready": version("playwright")}), flush=True)
        for line in sys.stdin:
            if line.strip() != "run":
                break
            started = time.perf_counter()
            context = browser.new_context(viewport={"width": 1366, "height": 768})
            try:
                page = context.new_page()
                shots = journey(page, expect, base, settings["user"], secrets, settings["total"])
                context.close()
                took = (time.perf_counter() - started) * 1000
                print(json.dumps({"ms": took, "screenshots": shots}), flush=True)
            except Exception as error:  # the journey failed: say so, the benchmark stops
                context.close()
                print(json.dumps({"error": str(error).splitlines()[0]}), flush=True)
        browser.close()


def journey(page, expect, base, user, secrets, total):
    """Every step of the journey, each followed by a viewport screenshot; returns how many."""
    shots = 0

    def step(action):
        nonlocal shots
        action()
        page.screenshot()
        shots += 1

    test = lambda name: page.locator(f'[data-test="{name}"]')
    step(lambda: page.goto(base + "/spa/"))
    step(lambda: test("username").fill(user))
    step(lambda: test("password").fill(secrets["password"]))
    step(lambda: test("login-button").click())
    step(lambda: page.wait_for_url("**/spa/inventory"))
    step(lambda: expect(page.locator(".inventory_item")).to_have_count(6))
    step(lambda: test("add-to-cart-backpack").click())
    step(lambda: test("add-to-cart-bike-light").click())
    step(lambda: expect(page.locator(".shopping_cart_badge")).to_have_text("2"))
    step(lambda: page.locator(".shopping_cart_link").click())
    step(lambda: expect(page).to_have_url(re.compile(r".*/spa/cart$")))
    step(lambda: test("checkout").click())
    step(lambda: test("firstName").fill("Ada"))
    step(lambda: test("lastName").fill("Lovelace"))
    step(lambda: test("postalCode").fill("10115"))
    step(lambda: test("continue").click())
    step(lambda: page.wait_for_url("**/spa/checkout/payment"))
    card = page.frame_locator("#payment-iframe")
    step(lambda: card.locator("#card-number").fill(secrets["card_number"]))
    step(lambda: card.locator("#card-cvc").fill(secrets["card_cvc"]))
    step(lambda: test("verify-card").click())
    step(lambda: page.frame_locator("#challenge-iframe").get_by_text("Authenticate").click())
    step(lambda: page.wait_for_url("**/spa/checkout/overview"))
    step(lambda: expect(page.locator(".summary_total_label")).to_contain_text(total))
    return shots


if __name__ == "__main__":
    main()
