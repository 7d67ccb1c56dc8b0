// Service worker: after the first visit the app works with no network. It precaches every file
// of the build but the WebGPU module, which it caches when first used (the list and the version
// are filled in by scripts/service-worker.sh, a trunk post-build hook, which also moves this
// file to the root of dist/ so that its scope is the app's folder, under whatever path it is
// hosted). A new deployment changes the version, so the browser installs the new worker, which
// fills a new cache and deletes the old one.
const VERSION = "__VERSION__";
const FILES = __FILES__;
const CACHE = `xray-web-${VERSION}`;
const scope = self.registration.scope;

// The WebGPU workers' module (xray-web-gpu) is not fetched at install: a page on the CPU never
// needs it. Nor is the build of the page's module this browser does not load (with or without
// relaxed SIMD: public/wasm-variant.js, the page's own choice). Each is cached the first time
// it is loaded (below), like any file of the list.
importScripts("public/wasm-variant.js");
const unused = self.xrayPageModule() === "xray-web-fma" ? "xray-web" : "xray-web-fma";
const wanted = FILES.filter(
  (f) => !f.startsWith("xray-web-gpu") && f !== `${unused}.js` && f !== `${unused}_bg.wasm`,
);
const listed = new Set(FILES.map((f) => new URL(f, scope).href));

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(wanted.map((f) => new URL(f, scope).href)))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) =>
        Promise.all(
          keys
            .filter((k) => k.startsWith("xray-web-") && k !== CACHE)
            .map((k) => caches.delete(k)),
        ),
      )
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET" || !request.url.startsWith(scope)) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      const hit = await cache.match(request, { ignoreSearch: true });
      if (hit) return hit;
      try {
        const response = await fetch(request);
        const key = request.url.split("?")[0];
        if (response.ok && listed.has(key)) event.waitUntil(cache.put(key, response.clone()));
        return response;
      } catch (err) {
        if (request.mode === "navigate") {
          const page = await cache.match(scope);
          if (page) return page;
        }
        throw err;
      }
    })(),
  );
});
