// Which build of the page's module this browser runs: `xray-web-fma`, whose CPU kernels fuse
// their multiply-adds with WebAssembly's relaxed SIMD, where the browser validates relaxed SIMD
// (Chromium since 114), and the plain-SIMD `xray-web` elsewhere. A classic script that only sets
// a global, so that the page (index.html loads it before public/boot.js) and the service worker
// (sw.js, with importScripts) ask the same question the same way.
self.xrayPageModule = () =>
  WebAssembly.validate(
    // (module (func (param v128 v128 v128) (result v128)
    //   local.get 0 local.get 1 local.get 2 f32x4.relaxed_madd))
    new Uint8Array([
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b,
      0x7b, 0x01, 0x7b, 0x03, 0x02, 0x01, 0x00, 0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x20, 0x00, 0x20,
      0x01, 0x20, 0x02, 0xfd, 0x85, 0x02, 0x0b,
    ]),
  )
    ? "xray-web-fma"
    : "xray-web";
