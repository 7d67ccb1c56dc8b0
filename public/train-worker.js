// The training worker (src/web/train_worker.rs): the app's own wasm, started in a dedicated
// worker so that training never holds up the page. It loads the module its name gives
// (`module=xray-web-gpu`, the same code with Burn's WebGPU backend, to train on WebGPU;
// otherwise the page's own, `module=xray-web-fma` or `module=xray-web`, see
// public/wasm-variant.js). Paths are relative to this file.
import { captureDevices } from "./gpu-drill.js";

// Failure drills, used by the end-to-end tests and passed on from the page's URL in this
// worker's name; nothing changes without them.
// `?worker-webgpu=off`: this worker sees no WebGPU, as in browsers that offer it to pages only.
if (/worker-webgpu=off/.test(self.name) && "gpu" in WorkerNavigator.prototype) {
  Object.defineProperty(WorkerNavigator.prototype, "gpu", { get: () => undefined });
}
// `?lose-gpu-at-step=N`: the worker's WebGPU device is destroyed, as when a GPU is lost, once
// step N is reported.
const loseAt = Number(/lose-gpu-at-step=(\d+)/.exec(self.name)?.[1]);
if (loseAt > 0 && self.GPUAdapter) {
  const lose = captureDevices();
  const post = self.postMessage.bind(self);
  self.postMessage = (message, transfer) => {
    post(message, transfer);
    const step = JSON.parse(message.json).Step?.step;
    if (step >= loseAt) lose();
  };
}

const name = /module=(xray-web-gpu|xray-web-fma)(;|$)/.exec(self.name)?.[1] ?? "xray-web";
const code = await import(`../${name}.js`);
await code.default({ module_or_path: new URL(`../${name}_bg.wasm`, import.meta.url) });
code.train_worker();
