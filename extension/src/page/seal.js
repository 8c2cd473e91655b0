// Last of Veil's page-world scripts: removes the namespace they shared
// (natives.js) before any page script runs, so a page never finds it.
'use strict';

delete (/** @type {any} */ (globalThis).veilPage);
