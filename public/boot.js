// Loads the app's wasm. A static file (not trunk's inline script) so that the page's
// Content-Security-Policy can forbid inline scripts. Paths are relative to this file, so the
// site works under any sub-path.
performance.mark("xray:boot");

// Offline use after the first visit (see public/sw.js, moved to the root of dist/ by the build).
if ("serviceWorker" in navigator) {
  navigator.serviceWorker
    .register(new URL("../sw.js", import.meta.url), { scope: new URL("../", import.meta.url) })
    .catch((e) => console.warn("offline use unavailable:", e));
}

// The page's module with relaxed SIMD where the browser has it, the plain one otherwise
// (public/wasm-variant.js, loaded by index.html before this script); the page says which on
// <html data-wasm>. The module's download starts before its bindings' script is imported.
const name = self.xrayPageModule?.() ?? "xray-web";
const wasm = fetch(new URL(`../${name}_bg.wasm`, import.meta.url));
const code = await import(`../${name}.js`);
await code.default({ module_or_path: wasm });
document.documentElement.dataset.wasm = name;
performance.mark("xray:wasm");
code.start();
