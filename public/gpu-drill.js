// Shared by the inference worker's failure drill (infer-worker.js) and the training worker's (train-worker.js):
// keeps every WebGPU device this global scope requests, and returns a function that destroys
// them all, as when a GPU is lost.
export function captureDevices() {
  const devices = [];
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    devices.push(device);
    return device;
  };
  return () => devices.forEach((d) => d.destroy());
}
