// Runs in an isolated world of one frame and takes one step of answering the cookie banner.
//
// `layer` 1 looks for the banner's "accept all" or "reject all" control: known consent platforms
// by their own element ids and classes first, then any visible button or link whose wording says
// accept or reject, in several languages. When refusing and the first layer offers no refusal but
// a banner is there (it has an accept control), the banner's "manage preferences" control is
// returned instead (`step: "settings"`). `layer` 2 runs after that control was clicked: a
// refusal there if it has one, otherwise every optional purpose that is switched on is switched
// off and the layer's "save my choices" control is returned (`step: "save"`).
//
// Open shadow roots are searched too. Resolves to null, or {step, matchedBy, label, x, y, unticked}
// with the control's centre in the frame's viewport after scrolling it into view. With
// `clickHere` the control is clicked from this world (for frames, where coordinates would need
// translating).
(async (mode, clickHere, layer) => {
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
      ["vanilla-cookieconsent", "#cc-main button[data-role='all']"],
      ["cookieconsent", ".cc-window .cc-allow"],
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
      ["klaro", ".cm-btn-decline, .cn-decline"],
      ["osano", ".osano-cm-deny"],
      ["iubenda", ".iubenda-cs-reject-btn"],
      ["sourcepoint", "button.sp_choice_type_13"],
      ["vanilla-cookieconsent", "#cc-main button[data-role='necessary']"],
      ["cookieconsent", ".cc-window .cc-deny"],
    ],
    settings: [
      ["onetrust", "#onetrust-pc-btn-handler"],
      ["cookiebot", "#CybotCookiebotDialogBodyLevelButtonCustomize, #CybotCookiebotDialogBodyButtonDetails"],
      ["didomi", "#didomi-notice-learn-more-button"],
      ["usercentrics", "[data-testid='uc-more-button']"],
      ["klaro", ".cn-learn-more"],
      ["vanilla-cookieconsent", "#cc-main button[data-role='show']"],
    ],
    save: [
      ["onetrust", ".save-preference-btn-handler"],
      ["cookiebot", "#CybotCookiebotDialogBodyLevelButtonLevelOptinAllowallSelection"],
      ["usercentrics", "[data-testid='uc-save-button']"],
      ["vanilla-cookieconsent", "#cc-main button[data-role='save']"],
    ],
  };
  const words = {
    accept: /^(accept( all| all cookies| cookies)?|accept (and|&) (close|continue)|allow( all)?( cookies)?|allow all cookies|agree( and close)?|i agree|i accept|ok(ay)?|ok,? accept all|that'?s ok|got it|yes,? i agree|alle akzeptieren|akzeptieren|alle cookies akzeptieren|alle zulassen|alle annehmen|zustimmen|einverstanden|das ist ok|tout accepter|accepter( tout| et fermer)?|j'accepte|aceptar( todo| todas| y continuar)?|acepto|accetta( tutti| tutto| e chiudi)?|accetto|alles accepteren|accepteren|akkoord|godkänn alla|acceptera alla|aceitar( todos)?|zaakceptuj wszystkie)$/,
    reject: /^(reject( all)?( cookies)?|reject (optional|non-essential|additional) cookies|i decline|decline( all)?( cookies)?|deny( all)?|refuse( all)?( cookies)?|disagree|i do not (agree|accept)|no,? thanks|only (strictly )?(necessary|essential|required)( cookies)?|(strictly )?(necessary|essential|required) cookies only|(use )?(only )?necessary (cookies )?only|use (only )?necessary cookies|continue without (accepting|agreeing|cookies)|alle ablehnen|ablehnen|ich lehne ab|nur (technisch )?(notwendige|essenzielle|erforderliche)( cookies)?( (akzeptieren|zulassen|erlauben))?|tout refuser|refuser( tout| les cookies)?|continuer sans accepter|rechazar( todo| todas| todas las cookies)?|rifiuta( tutti| tutto)?|rifiuto|(accetta )?solo (i )?(cookie )?necessari|alles weigeren|weigeren|alleen noodzakelijke( cookies)?|avvisa alla|neka alla|rejeitar( todos)?|odrzuć( wszystkie)?)$/,
    settings: /^(manage (my )?(preferences|settings|options|choices|cookies)|(cookie )?(settings|preferences)|customi[sz]e( (settings|choices|cookies))?|let me choose|more options|options|show purposes|einstellungen|cookie-einstellungen|einstellungen (anpassen|verwalten)|anpassen|individuelle (datenschutz)?einstellungen|mehr optionen|personnaliser|paramètres|gérer (mes )?(préférences|choix|cookies)|configurar|personalizar|gestionar (cookies|preferencias)|personalizza|gestisci (le )?(preferenze|opzioni)|instellingen|voorkeuren( aanpassen)?)$/,
    save: /^(save( (my )?(preferences|settings|choices|selection))?|save (and|&) (close|exit)|confirm (my )?(choices|selection|preferences)|accept (selected|selection)|allow selection|(auswahl|einstellungen) (speichern|bestätigen)|speichern|enregistrer( mes (choix|préférences))?|confirmer (mes choix|la sélection)|valider( mes choix)?|guardar( preferencias| configuración| selección)?|confirmar (selección|preferencias)|salva( (preferenze|le scelte|impostazioni))?|conferma( (selezione|scelte))?|opslaan|voorkeuren opslaan|keuze opslaan)$/,
  };
  const deepAll = (root, selector, out = []) => {
    out.push(...root.querySelectorAll(selector));
    if (root.shadowRoot) deepAll(root.shadowRoot, selector, out);
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
  const wordingOf = (el) => labelOf(el).toLowerCase().replace(/[’`]/g, "'").replace(/^[^\p{L}]+|[^\p{L}]+$/gu, "");
  const controls = () => deepAll(document, "button, a, [role='button'], input[type='button'], input[type='submit']").filter(visible);
  const find = (kind) => {
    for (const [platform, selector] of platforms[kind]) {
      const el = deepAll(document, selector).find(visible);
      if (el) return { el, matchedBy: platform };
    }
    const el = controls().find((c) => words[kind].test(wordingOf(c)));
    return el ? { el, matchedBy: "text" } : null;
  };
  // The element's parent, crossing out of a shadow root to its host.
  const parentOf = (el) => el.parentElement || (el.getRootNode() instanceof ShadowRoot ? el.getRootNode().host : null);
  // Switches an optional purpose off: checked, enabled checkboxes and ARIA switches in the
  // smallest ancestor of the save control that holds any.
  const untickAround = (save) => {
    const toggles = (root) => [
      ...deepAll(root, "input[type='checkbox']").filter((t) => t.checked && !t.disabled),
      ...deepAll(root, "[role='switch'][aria-checked='true'], [role='checkbox'][aria-checked='true']").filter((t) => t.getAttribute("aria-disabled") !== "true"),
    ];
    const unticked = [];
    for (let scope = parentOf(save); scope; scope = parentOf(scope)) {
      const on = toggles(scope);
      if (!on.length) continue;
      for (const toggle of on) {
        toggle.click();
        const label = (toggle.labels && toggle.labels[0] && labelOf(toggle.labels[0])) || toggle.getAttribute("aria-label") || toggle.name || toggle.id || "";
        unticked.push(label.slice(0, 100));
      }
      break;
    }
    return unticked;
  };

  let found = null;
  if (layer === 1) {
    found = find(mode);
    if (found) found.step = "answer";
    else if (mode === "reject" && find("accept")) {
      found = find("settings");
      if (found) found.step = "settings";
    }
  } else {
    found = find(mode);
    if (found) found.step = "answer";
    else if (mode === "reject") {
      found = find("save");
      if (found) {
        found.step = "save";
        found.unticked = untickAround(found.el);
      }
    }
  }
  if (!found) return null;
  found.el.scrollIntoView({ block: "center", inline: "center" });
  // Banners slide and fade in: wait (at most 1.5 s) until the control stays put for 100 ms, so
  // the click lands where it is and not where it was.
  let rect = found.el.getBoundingClientRect();
  for (const started = performance.now(); performance.now() - started < 1500; ) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = found.el.getBoundingClientRect();
    const still = ["x", "y", "width", "height"].every((k) => Math.abs(now[k] - rect[k]) < 0.5);
    rect = now;
    if (still) break;
  }
  if (clickHere) found.el.click();
  return {
    step: found.step,
    matchedBy: found.matchedBy,
    label: labelOf(found.el).slice(0, 200),
    x: rect.left + rect.width / 2,
    y: rect.top + rect.height / 2,
    unticked: found.unticked || [],
  };
})
