// Runs in an isolated world of one frame: finds the cookie banner's "accept all" or "reject all"
// control. Known consent platforms are recognised by their own element ids and classes first; then
// any visible button or link whose text says accept or reject, in several languages. Open shadow
// roots are searched too. Returns null, or {matchedBy, label, x, y} with the control's centre in
// the frame's viewport after scrolling it into view. With `clickHere` the control is clicked
// from this world (for frames, where coordinates would need translating).
((mode, clickHere) => {
  const platforms = {
    accept: [
      ["onetrust", "#onetrust-accept-btn-handler"],
      ["cookiebot", "#CybotCookiebotDialogBodyLevelButtonLevelOptinAllowAll, #CybotCookiebotDialogBodyButtonAccept"],
      ["didomi", "#didomi-notice-agree-button"],
      ["usercentrics", "[data-testid='uc-accept-all-button']"],
      ["quantcast", ".qc-cmp2-summary-buttons button[mode='primary']"],
      ["trustarc", "#truste-consent-button"],
      ["complianz", ".cmplz-accept"],
      ["cookieyes", ".cky-btn-accept"],
      ["borlabs", "a._brlbs-btn-accept-all, #BorlabsCookieBoxAcceptAll"],
      ["klaro", ".cm-btn-accept-all, .cm-btn-success"],
      ["osano", ".osano-cm-accept-all"],
      ["iubenda", ".iubenda-cs-accept-btn"],
      ["sourcepoint", "button.sp_choice_type_11"],
    ],
    reject: [
      ["onetrust", "#onetrust-reject-all-handler"],
      ["cookiebot", "#CybotCookiebotDialogBodyButtonDecline"],
      ["didomi", "#didomi-notice-disagree-button"],
      ["usercentrics", "[data-testid='uc-deny-all-button']"],
      ["quantcast", ".qc-cmp2-summary-buttons button[mode='secondary']"],
      ["trustarc", "#truste-consent-required"],
      ["complianz", ".cmplz-deny"],
      ["cookieyes", ".cky-btn-reject"],
      ["borlabs", "a._brlbs-refuse-btn, #BorlabsCookieBoxRefuse"],
      ["klaro", ".cm-btn-decline"],
      ["osano", ".osano-cm-deny"],
      ["iubenda", ".iubenda-cs-reject-btn"],
      ["sourcepoint", "button.sp_choice_type_13"],
    ],
  };
  const words = {
    accept: /^(accept( all)?( cookies)?|allow( all)?( cookies)?|agree|i agree|i accept|ok(ay)?|got it|yes,? i agree|alle akzeptieren|akzeptieren|alle cookies akzeptieren|zustimmen|einverstanden|tout accepter|accepter( tout)?|j'accepte|aceptar( todo| todas)?|accetta( tutti| tutto)?|accetto|alles accepteren|accepteren|akkoord|godkänn alla|acceptera alla|aceitar( todos)?|zaakceptuj wszystkie)$/i,
    reject: /^(reject( all)?( cookies)?|decline( all)?|deny( all)?|refuse( all)?|disagree|only (strictly )?necessary( cookies)?|(use )?necessary (cookies )?only|continue without accepting|alle ablehnen|ablehnen|nur notwendige( cookies)?|tout refuser|refuser|continuer sans accepter|rechazar( todo| todas)?|rifiuta( tutti| tutto)?|alles weigeren|weigeren|avvisa alla|neka alla|rejeitar( todos)?|odrzuć wszystkie)$/i,
  };
  const deepAll = (root, selector, out = []) => {
    out.push(...root.querySelectorAll(selector));
    for (const el of root.querySelectorAll("*")) {
      if (el.shadowRoot) deepAll(el.shadowRoot, selector, out);
    }
    return out;
  };
  const visible = (el) => {
    const rect = el.getBoundingClientRect();
    if (rect.width < 1 || rect.height < 1) return false;
    const style = getComputedStyle(el);
    return style.visibility !== "hidden" && style.display !== "none" && Number(style.opacity) > 0.05;
  };
  const labelOf = (el) => (el.innerText || el.value || el.getAttribute("aria-label") || "").replace(/\s+/g, " ").trim();
  let found = null;
  for (const [platform, selector] of platforms[mode] || []) {
    const el = deepAll(document, selector).find(visible);
    if (el) { found = { el, matchedBy: platform }; break; }
  }
  if (!found) {
    const candidates = deepAll(document, "button, a, [role='button'], input[type='button'], input[type='submit']");
    const el = candidates.find((c) => visible(c) && words[mode] && words[mode].test(labelOf(c)));
    if (el) found = { el, matchedBy: "text" };
  }
  if (!found) return null;
  found.el.scrollIntoView({ block: "center", inline: "center" });
  const rect = found.el.getBoundingClientRect();
  if (clickHere) found.el.click();
  return {
    matchedBy: found.matchedBy,
    label: labelOf(found.el).slice(0, 200),
    x: rect.left + rect.width / 2,
    y: rect.top + rect.height / 2,
  };
})
