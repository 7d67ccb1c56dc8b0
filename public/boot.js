// Loads the app's wasm. A static file (not trunk's inline script) so that the page's
// Content-Security-Policy can forbid inline scripts. Paths are relative to this file, so the
// site works under any sub-path.
import init, { start } from "../xray-web.js";

performance.mark("xray:boot");

// Offline use after the first visit (see public/sw.js, moved to the root of dist/ by the build).
if ("serviceWorker" in navigator) {
  navigator.serviceWorker
    .register(new URL("../sw.js", import.meta.url), { scope: new URL("../", import.meta.url) })
    .catch((e) => console.warn("offline use unavailable:", e));
}

await init({ module_or_path: new URL("../xray-web_bg.wasm", import.meta.url) });
performance.mark("xray:wasm");
start();
