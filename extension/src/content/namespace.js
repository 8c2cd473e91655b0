// Content scripts are classic scripts (MV3 cannot load them as ES modules
// declaratively), listed in order in manifest.json. Each one is a small
// module-like IIFE that adds its part to this one namespace, which lives in
// the extension's isolated world: page scripts cannot see or change it.
'use strict';

if (!globalThis.veilContent) globalThis.veilContent = /** @type {VeilContent} */ ({});
