// The inference worker (src/web/infer_worker.rs): the app's own wasm, started in a dedicated
// worker so that reading, decoding and classifying a file never hold up the page. On the CPU
// the page sends the module it compiled and its name (`xray-web-fma` or `xray-web`, see
// public/wasm-variant.js) as the first message, so the code is not compiled twice; for WebGPU
// it asks for the WebGPU module (`xray-web-gpu`, the same code with Burn's WebGPU backend),
// which only this worker and the training worker load.
// Paths are relative to this file.
import { captureDevices } from "./gpu-drill.js";

// Failure drills, used by the end-to-end tests and passed on from the page's URL in this
// worker's name; nothing changes without them.
// `?infer-worker-webgpu=off`: this worker sees no WebGPU, as in browsers that offer it to pages only.
if (/infer-worker-webgpu=off/.test(self.name) && "gpu" in WorkerNavigator.prototype) {
  Object.defineProperty(WorkerNavigator.prototype, "gpu", { get: () => undefined });
}
// `?lose-gpu-at-image=N`: the worker's WebGPU device is destroyed, as when a GPU is lost, once
// N images have been classified on it (the worker reports each one to `xrayDrillImageOnGpu`).
const loseAt = Number(/lose-gpu-at-image=(\d+)/.exec(self.name)?.[1]);
if (loseAt > 0 && self.GPUAdapter) {
  const lose = captureDevices();
  let done = 0;
  self.xrayDrillImageOnGpu = () => {
    done += 1;
    if (done === loseAt) lose();
  };
}

// `?crash-worker-at-image=N`: this worker dies, as when its runtime panics, on the N-th file it
// is asked to classify.
const crashAt = Number(/crash-worker-at-image=(\d+)/.exec(self.name)?.[1]);
function crashDrill() {
  const handler = self.onmessage;
  let seen = 0;
  self.onmessage = (event) => {
    if ("Classify" in JSON.parse(event.data.json) && ++seen === crashAt) {
      self.postMessage({ json: JSON.stringify({ Crashed: { message: "the crash drill" } }), parts: [] });
      self.close();
      return;
    }
    handler(event);
  };
}

self.onmessage = async (event) => {
  self.onmessage = null;
  try {
    const gpu = event.data.gpu === true;
    const name = gpu ? "xray-web-gpu" : event.data.name === "xray-web-fma" ? "xray-web-fma" : "xray-web";
    const code = await import(`../${name}.js`);
    await code.default({ module_or_path: gpu ? new URL(`../${name}_bg.wasm`, import.meta.url) : event.data.module });
    code.infer_worker();
    if (crashAt > 0) crashDrill();
  } catch (e) {
    // What the page waits for: the worker will not answer.
    self.postMessage({ json: JSON.stringify({ Crashed: { message: `the model code did not start: ${e}` } }), parts: [] });
  }
};

// The page hands over the module only once this script listens (a message sent to a module
// worker while its script loads can be lost).
self.postMessage({ json: JSON.stringify("Listening"), parts: [] });
