// Failure drills for the page, used by the end-to-end tests; nothing changes without them
// (the training worker's own drills are in train-worker.js).
// `?lose-gpu-at-image=N`: the page's WebGPU device is destroyed, as when a GPU is lost, once
// N images have been classified on it (the app reports each one to `xrayDrillImageOnGpu`).
import { captureDevices } from "./gpu-drill.js";

const loseAt = Number(/[?&]lose-gpu-at-image=(\d+)/.exec(location.search)?.[1]);
if (loseAt > 0 && self.GPUAdapter) {
  const lose = captureDevices();
  let done = 0;
  self.xrayDrillImageOnGpu = () => {
    done += 1;
    if (done === loseAt) lose();
  };
}
