// Loads the app's wasm. A static file (not trunk's inline script) so that the page's
// Content-Security-Policy can forbid inline scripts. Paths are relative to this file, so the
// site works under any sub-path.
import init from "../xray-web.js";

await init({ module_or_path: new URL("../xray-web_bg.wasm", import.meta.url) });
