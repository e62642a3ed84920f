// Runs in an isolated world: finds links to the site's privacy, cookie and terms pages. Returns
// [{kind, url, text}] with at most one link per kind, preferring the first in document order.
(() => {
  const patterns = [
    ["cookies", /cookie/i],
    ["privacy", /privacy|datenschutz|confidentialit|privacidad|privacit|privacybeleid|integritet/i],
    ["terms", /terms|conditions|\bagb\b|nutzungsbedingungen|conditions g[eé]n[eé]rales|\btos\b|legal/i],
  ];
  const found = {};
  for (const a of document.querySelectorAll("a[href]")) {
    const href = a.href;
    if (!/^https?:/i.test(href)) continue;
    // A link into this same document ("#", "#cookie-settings") opens a dialog, not a page.
    if (href.split("#")[0] === location.href.split("#")[0]) continue;
    const text = (a.innerText || a.textContent || "").trim().slice(0, 200);
    const haystack = text + " " + a.getAttribute("href");
    for (const [kind, re] of patterns) {
      if (!found[kind] && re.test(haystack)) {
        found[kind] = { kind, url: href, text };
        break;
      }
    }
  }
  return Object.values(found);
})()
