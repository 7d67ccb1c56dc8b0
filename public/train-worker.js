// The training worker (src/web/training_worker.rs): the app's own wasm, started in a dedicated
// worker so that training never holds up the page. Paths are relative to this file.
import init, { train_worker } from "../xray-web.js";

await init({ module_or_path: new URL("../xray-web_bg.wasm", import.meta.url) });
train_worker();
