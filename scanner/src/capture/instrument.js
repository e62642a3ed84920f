// Installed in every document before the page's own scripts run. It reports cookie writes made by
// scripts (document.cookie and the Cookie Store API) with the calling script's URL, so a snapshot
// can say which host set a cookie. It reports names only, never values. The reporting function is
// a DevTools binding whose global name is removed at once, so the page cannot call it.
(() => {
  const bindingName = "__SITEWARD_BINDING__";
  const report = globalThis[bindingName];
  if (typeof report !== "function") return;
  try { delete globalThis[bindingName]; } catch (_) {}
  const stringify = JSON.stringify;
  const ErrorCtor = Error;
  const callerScript = () => {
    const stack = String(new ErrorCtor().stack || "");
    const match = stack.match(/(https?:\/\/[^\s()]+?):\d+:\d+/);
    return match ? match[1] : null;
  };
  const documentHost = () => {
    try { return location.hostname; } catch (_) { return ""; }
  };
  const send = (name, via) => {
    try {
      report(stringify({ name: String(name).slice(0, 256), script: callerScript(), documentHost: documentHost(), via }));
    } catch (_) {}
  };
  const cookie = Object.getOwnPropertyDescriptor(Document.prototype, "cookie");
  if (cookie && cookie.set && cookie.get) {
    Object.defineProperty(Document.prototype, "cookie", {
      configurable: true,
      enumerable: cookie.enumerable,
      get() { return cookie.get.call(this); },
      set(value) {
        const text = String(value);
        const eq = text.indexOf("=");
        send(eq >= 0 ? text.slice(0, eq).trim() : "", "document.cookie");
        return cookie.set.call(this, value);
      },
    });
  }
  if (typeof CookieStore === "function" && CookieStore.prototype.set) {
    const set = CookieStore.prototype.set;
    CookieStore.prototype.set = function (nameOrOptions, ...rest) {
      send(nameOrOptions && typeof nameOrOptions === "object" ? nameOrOptions.name : nameOrOptions, "cookieStore");
      return set.call(this, nameOrOptions, ...rest);
    };
  }
})();
