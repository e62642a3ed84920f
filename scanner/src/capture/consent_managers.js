// Runs in an isolated world of one frame: the known consent managers whose markup is in the
// document (open shadow roots included) or whose script the frame loaded, shown or not. Their
// banner may be hidden from this visit; a known consent manager without a banner is a finding.
() => {
  const known = [
    ["onetrust", "#onetrust-consent-sdk, #onetrust-banner-sdk", /cookielaw\.org|otSDKStub|otBannerSdk/i],
    ["cookiebot", "#CybotCookiebotDialog", /consent\.cookiebot\.(com|eu)/i],
    ["didomi", "#didomi-host", /privacy-center\.org|didomi/i],
    ["usercentrics", "#usercentrics-root, #usercentrics-cmp-ui", /usercentrics\.eu/i],
    ["quantcast", ".qc-cmp2-container", /quantcast\.mgr\.consensu\.org|cmp\.quantcast\.com/i],
    ["trustarc", "#truste-consent-track, #truste-consent-content", /consent\.trustarc\.com|truste\.com\/notice/i],
    ["complianz", "#cmplz-cookiebanner-container, .cmplz-cookiebanner", /complianz/i],
    ["cookieyes", ".cky-consent-container", /cookieyes\.com/i],
    ["borlabs", "#BorlabsCookieBox", /borlabs-cookie/i],
    ["klaro", ".klaro", /klaro(\.min)?(-no-css)?(-no-translations)?\.js|\/klaro\//i],
    ["osano", ".osano-cm-window", /cmp\.osano\.com/i],
    ["iubenda", "#iubenda-cs-banner", /iubenda\.com/i],
    ["sourcepoint", "[id^='sp_message_container']", /privacy-mgmt\.com|sp-prod\.net|sourcepoint/i],
    ["vanilla-cookieconsent", "#cc-main", /vanilla-cookieconsent|cookieconsent\.(umd|esm)\.js/i],
    ["cookieconsent", ".cc-window", /cookieconsent(\.min)?\.js|cookieconsent2/i],
    ["tarteaucitron", "#tarteaucitronRoot", /tarteaucitron/i],
    ["cookie-though", "aside.cookie-though", /cookie-though/i],
    ["cookies-eu-banner", "#cookies-eu-banner", /cookies-eu-banner/i],
  ];
  const deepHas = (root, selector) => {
    if (root.querySelector(selector)) return true;
    for (const el of root.querySelectorAll("*")) {
      if (el.shadowRoot && deepHas(el.shadowRoot, selector)) return true;
    }
    return false;
  };
  const scripts = [
    ...[...document.scripts].map((s) => s.src).filter(Boolean),
    ...performance.getEntriesByType("resource").filter((e) => e.initiatorType === "script").map((e) => e.name),
  ];
  return known
    .filter(([, selector, script]) => deepHas(document, selector) || scripts.some((url) => script.test(url)))
    .map(([name]) => name);
}
