// siteward's page helper for checkout steps. Evaluated in an isolated world (the page's scripts
// cannot replace the DOM functions it uses) as `(helper)(op, selector, arg, hidden)`; returns plain
// JSON. `hidden` lists every form of every secret of the run (3 characters or more): no answer
// and no match may depend on them, so a step cannot be written to learn a secret by passing or
// failing. Fields filled from a secret read as empty, text showing one reads `[secret]` (in any
// case), and elements whose attributes carry one match no selector.
(function (op, sel, arg, hidden) {
  const norm = (s) => (s || "").replace(/\s+/g, " ").trim().toLowerCase();
  const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const forms = (hidden || []).filter((s) => typeof s === "string" && s.length >= 3);
  const secretSource = forms.map(escapeRe).join("|");
  const redact = (s) => forms.length ? (s || "").replace(new RegExp(secretSource, "gi"), "[secret]") : (s || "");
  const showsSecret = (s) => forms.length > 0 && new RegExp(secretSource, "i").test(s || "");
  // `ownValue`: whether a field's own `value` attribute counts. Frameworks (React) mirror what
  // is typed into it, so a field filled from a secret carries it; a data-test selector cannot
  // probe an attribute and may still find the field, a CSS selector could (`[value^=…]`) and
  // may not.
  const attributesShowSecret = (el, ownValue = true) => forms.length > 0 &&
    Array.from(el.attributes).some((a) =>
      (ownValue || a.name !== "value" || !("value" in el)) && showsSecret(a.value));
  // What a step may read of an element: empty for a field filled from a secret, whatever the
  // page did to the value; anything else with its secrets replaced.
  const text = (el) => el.hasAttribute("data-siteward-secret") ? "" :
    redact((el.tagName === "INPUT" || el.tagName === "TEXTAREA" ? el.value : el.innerText) || "");
  const visible = (el) => {
    if (!el.isConnected) return false;
    if (el.checkVisibility && !el.checkVisibility({ opacityProperty: true, visibilityProperty: true })) return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  // ARIA roles: the element's own `role`, or the one its tag implies (HTML-AAM, the part a
  // journey meets; password fields count as text boxes, as Chromium exposes them).
  const implicitRole = (el) => {
    const tag = el.tagName;
    if (/^H[1-6]$/.test(tag)) return "heading";
    if (tag === "INPUT") {
      const type = (el.getAttribute("type") || "text").toLowerCase();
      if (["button", "submit", "reset", "image"].includes(type)) return "button";
      if (type === "checkbox" || type === "radio") return type;
      if (type === "number") return "spinbutton";
      if (type === "search") return el.hasAttribute("list") ? "combobox" : "searchbox";
      if (["text", "email", "tel", "url", "password"].includes(type)) return el.hasAttribute("list") ? "combobox" : "textbox";
      return null;
    }
    if (tag === "SELECT") return el.multiple || el.size > 1 ? "listbox" : "combobox";
    if (tag === "A" || tag === "AREA") return el.hasAttribute("href") ? "link" : null;
    if (tag === "IMG") return el.getAttribute("alt") === "" ? null : "img";
    if (tag === "SECTION") return el.hasAttribute("aria-label") || el.hasAttribute("aria-labelledby") ? "region" : null;
    return { BUTTON: "button", SUMMARY: "button", TEXTAREA: "textbox", OPTION: "option", NAV: "navigation",
      MAIN: "main", FORM: "form", DIALOG: "dialog", UL: "list", OL: "list", LI: "listitem", TABLE: "table",
      TR: "row", TD: "cell", TH: "columnheader", PROGRESS: "progressbar", ARTICLE: "article", HEADER: "banner",
      FOOTER: "contentinfo", SEARCH: "search", OUTPUT: "status" }[tag] || null;
  };
  const roleOf = (el) => {
    const own = (el.getAttribute("role") || "").trim().split(/\s+/)[0].toLowerCase();
    return own || implicitRole(el);
  };
  const NAMED_BY_CONTENT = ["button", "link", "heading", "tab", "menuitem", "option", "checkbox", "radio",
    "switch", "cell", "columnheader", "row", "listitem", "status", "alert"];
  // The accessible name, in the order the spec tries its sources (simplified): aria-labelledby,
  // aria-label, labels, a button's value, alt, content for roles named by it, title, placeholder.
  const nameOf = (el) => {
    const byIds = (el.getAttribute("aria-labelledby") || "").split(/\s+/).filter(Boolean)
      .map((id) => document.getElementById(id)).filter(Boolean).map((l) => l.innerText || l.textContent).join(" ");
    if (norm(byIds)) return byIds;
    const aria = el.getAttribute("aria-label");
    if (norm(aria)) return aria;
    if (el.labels && el.labels.length) {
      const labels = Array.from(el.labels).map((l) => l.innerText).join(" ");
      if (norm(labels)) return labels;
    }
    if (el.tagName === "INPUT" && ["button", "submit", "reset"].includes(el.type)) {
      return el.value || (el.type === "submit" ? "Submit" : el.type === "reset" ? "Reset" : "");
    }
    if (el.tagName === "IMG" || (el.tagName === "INPUT" && el.type === "image")) return el.getAttribute("alt") || el.getAttribute("title") || "";
    if (NAMED_BY_CONTENT.includes(roleOf(el)) && norm(el.innerText)) return el.innerText;
    return el.getAttribute("title") || el.getAttribute("placeholder") || "";
  };
  const find = (sel) => {
    if (!sel) return [];
    if (sel.role) {
      const want = sel.name == null ? null : norm(sel.name);
      return Array.from(document.querySelectorAll("*")).filter((el) => roleOf(el) === sel.role &&
        (want === null || norm(redact(nameOf(el))) === want) && !attributesShowSecret(el, false));
    }
    if (sel.css) return Array.from(document.querySelectorAll(sel.css)).filter((el) => !attributesShowSecret(el));
    if (sel.test) {
      const v = CSS.escape(sel.test);
      return Array.from(document.querySelectorAll(`[data-test="${v}"],[data-testid="${v}"],[data-test-id="${v}"]`))
        .filter((el) => !attributesShowSecret(el, false));
    }
    const want = norm(sel.text);
    const all = Array.from(document.body ? document.body.querySelectorAll("*") : []);
    const hits = all.filter((el) => norm(text(el)) === want);
    // The innermost matches: no element whose child also matches.
    return hits.filter((el) => !hits.some((other) => other !== el && el.contains(other)));
  };
  const describe = (el) => {
    let d = el.tagName.toLowerCase();
    if (el.id) d += "#" + el.id;
    else if (el.classList.length) d += "." + Array.from(el.classList).slice(0, 2).join(".");
    return d;
  };
  const first = (sel) => {
    const all = find(sel);
    if (!all.length) return { missing: true };
    const shown = all.find(visible);
    if (!shown) return { hidden: true };
    return { el: shown };
  };
  const setValue = (el, value) => {
    const proto = el.tagName === "TEXTAREA" ? HTMLTextAreaElement.prototype
      : el.tagName === "SELECT" ? HTMLSelectElement.prototype : HTMLInputElement.prototype;
    Object.getOwnPropertyDescriptor(proto, "value").set.call(el, value);
    el.dispatchEvent(new Event("input", { bubbles: true }));
    el.dispatchEvent(new Event("change", { bubbles: true }));
  };
  const maskElement = (el) => {
    el.setAttribute("data-siteward-secret", "");
    for (const [k, v] of [["color", "transparent"], ["-webkit-text-fill-color", "transparent"],
      ["text-shadow", "none"], ["caret-color", "transparent"], ["-webkit-text-security", "disc"],
      ["background-color", "#cfd3d8"], ["background-image", "none"]]) {
      el.style.setProperty(k, v, "important");
    }
  };
  switch (op) {
    case "count": {
      const all = find(sel);
      return { count: all.length, visible: all.filter(visible).length };
    }
    case "point": {
      const f = first(sel);
      if (!f.el) return f;
      const el = f.el;
      if (el.disabled || el.getAttribute("aria-disabled") === "true") return { blocked: "it is disabled" };
      el.scrollIntoView({ block: "center", inline: "center", behavior: "instant" });
      const r = el.getBoundingClientRect();
      const x = r.left + r.width / 2, y = r.top + r.height / 2;
      const hit = document.elementFromPoint(x, y);
      if (hit && hit !== el && !el.contains(hit) && !(hit.tagName === "LABEL" && hit.control === el)) {
        return { blocked: "it is covered by " + describe(hit) };
      }
      return { x, y };
    }
    case "focus": {
      const f = first(sel);
      if (!f.el) return f;
      const el = f.el;
      const editable = el.isContentEditable || el.tagName === "TEXTAREA" ||
        (el.tagName === "INPUT" && !["checkbox", "radio", "button", "submit", "file", "image", "reset"].includes(el.type));
      if (!editable) return { blocked: "it is not a text field (" + describe(el) + ")" };
      if (el.disabled) return { blocked: "it is disabled" };
      if (el.readOnly) return { blocked: "it is read-only" };
      el.scrollIntoView({ block: "center", behavior: "instant" });
      el.focus();
      if (el.isContentEditable) el.textContent = "";
      else if (el.value !== "") setValue(el, "");
      return { ok: true };
    }
    case "changed": {
      const f = first(sel);
      if (!f.el) return f;
      f.el.dispatchEvent(new Event("change", { bubbles: true }));
      if (arg && arg.secret) maskElement(f.el);
      return { ok: true, length: text(f.el).length };
    }
    case "select": {
      const f = first(sel);
      if (!f.el) return f;
      const el = f.el;
      if (el.tagName !== "SELECT") return { blocked: "it is not a <select> (" + describe(el) + ")" };
      if (el.disabled) return { blocked: "it is disabled" };
      const want = norm(arg);
      const option = Array.from(el.options).find((o) => norm(o.value) === want || norm(o.label) === want);
      if (!option) return { no_option: Array.from(el.options).slice(0, 20).map((o) => o.label).join(", ") };
      setValue(el, option.value);
      return { ok: true };
    }
    case "kept": {
      // Whether a field holds what was just typed into it: for a secret only that it is not
      // empty (no answer may depend on a secret); for a value, that value, or the same letters
      // and digits (fields that format what is typed: card numbers, phone numbers).
      const f = first(sel);
      if (!f.el) return f;
      const value = f.el.isContentEditable ? f.el.innerText : (f.el.value || "");
      if (arg && arg.secret) return { kept: value !== "" };
      const squash = (s) => (s || "").replace(/[^\p{L}\p{N}]/gu, "").toLowerCase();
      const want = (arg && arg.value) || "";
      return { kept: value === want || squash(value) === squash(want), found: redact(value).slice(0, 200) };
    }
    case "selected": {
      const f = first(sel);
      if (!f.el) return f;
      const option = f.el.selectedOptions && f.el.selectedOptions[0];
      const want = norm(arg);
      return { kept: !!option && (norm(option.value) === want || norm(option.label) === want),
        found: option ? redact(option.label) : "" };
    }
    case "reveal": {
      // Before a failure's screenshot: the element in question in the middle of the viewport.
      const f = first(sel);
      if (f.el) f.el.scrollIntoView({ block: "center", inline: "center", behavior: "instant" });
      return { ok: !!f.el };
    }
    case "checked": {
      const f = first(sel);
      if (!f.el) return f;
      if (!("checked" in f.el)) return { blocked: "it is not a checkbox or radio button" };
      return { checked: f.el.checked };
    }
    case "text": {
      if (!sel) return { text: redact(document.body ? document.body.innerText : "") };
      const f = first(sel);
      if (!f.el) return f;
      return { text: text(f.el) };
    }
    case "arm": {
      // Notes, synchronously, any navigation the next input starts (link, form, script).
      window.__siteward_navigating = false;
      if (window.navigation) {
        navigation.addEventListener("navigate", (event) => {
          window.__siteward_navigating = true;
          // A navigation a script cancels never commits.
          setTimeout(() => { if (event.defaultPrevented) window.__siteward_navigating = false; }, 0);
        }, { once: true });
        navigation.addEventListener("navigateerror", () => { window.__siteward_navigating = false; }, { once: true });
      }
      return { ok: true };
    }
    case "alerts": {
      // What the page shows as an error now: alerts and live regions, invalid fields' messages,
      // and elements with the classes shops give error messages. Visible ones, redacted.
      const selectors = "[role=alert], [aria-live=assertive], [aria-live=polite], [data-test=error], " +
        ".error, .error-message, .errors, .alert-danger, .alert-error, .invalid-feedback, .field-error, " +
        ".form-error, .message-error, .notification--error, .woocommerce-error, .help-block.error";
      const roots = [document];
      for (let i = 0; i < roots.length; i++) {
        for (const el of roots[i].querySelectorAll("*")) if (el.shadowRoot) roots.push(el.shadowRoot);
      }
      const found = [];
      const add = (el) => {
        if (!el || !visible(el)) return;
        const said = redact(el.innerText || "").replace(/\s+/g, " ").trim();
        // The innermost message wins over a container that holds it.
        if (!said || said.length > 300 || found.some((f) => said.includes(f))) return;
        for (let i = found.length - 1; i >= 0; i--) if (found[i].includes(said)) found.splice(i, 1);
        found.push(said);
      };
      for (const root of roots) {
        for (const el of root.querySelectorAll(selectors)) add(el);
        for (const field of root.querySelectorAll("[aria-invalid=true]")) {
          const ids = ((field.getAttribute("aria-errormessage") || "") + " " + (field.getAttribute("aria-describedby") || "")).split(/\s+/);
          for (const id of ids) if (id) add(root.getElementById ? root.getElementById(id) : document.getElementById(id));
        }
      }
      return { alerts: found.slice(0, 5) };
    }
    case "navigating":
      return { navigating: window.__siteward_navigating === true };
    case "mask": {
      // Every field holding a secret, and every text showing one, is hidden before a screenshot,
      // in the document and in every open shadow root.
      const secrets = (arg || []).filter((s) => s.length >= 3);
      const roots = [document];
      for (let i = 0; i < roots.length; i++) {
        for (const el of roots[i].querySelectorAll("*")) if (el.shadowRoot) roots.push(el.shadowRoot);
      }
      let masked = 0;
      for (const root of roots) {
        for (const el of root.querySelectorAll("[data-siteward-secret]")) { maskElement(el); masked++; }
        for (const el of root.querySelectorAll("input, textarea")) {
          if (secrets.some((s) => el.value.includes(s))) { maskElement(el); masked++; }
        }
        const top = root === document ? document.body : root;
        if (!top || !secrets.length) continue;
        const walker = document.createTreeWalker(top, NodeFilter.SHOW_TEXT);
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
          let t = n.nodeValue, changed = false;
          for (const s of secrets) {
            if (t.includes(s)) { t = t.split(s).join("\u2022".repeat(4)); changed = true; }
          }
          if (changed) { n.nodeValue = t; masked++; }
        }
      }
      // A value split across elements escapes the walk; the rendered text joins it again.
      const shown = document.body ? document.body.innerText : "";
      const leaked = secrets.some((s) => shown.includes(s));
      return { masked, leaked, scroll_x: window.scrollX, scroll_y: window.scrollY };
    }
  }
  return { error: "unknown operation " + op };
})
