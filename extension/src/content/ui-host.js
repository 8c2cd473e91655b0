// Hosts for Veil's in-page UI: a closed shadow root on a plain element whose
// inline !important styles win over any page stylesheet, so page CSS neither
// leaks in nor hides it, and page scripts cannot reach inside.
'use strict';

(() => {
  const HOST_STYLE = [
    'all: initial !important',
    'position: fixed !important',
    'z-index: 2147483647 !important',
    'display: block !important',
    'visibility: visible !important',
    'opacity: 1 !important',
    'pointer-events: auto !important',
    'contain: layout style !important',
  ];

  /**
   * Creates a fixed host at the given position and returns its closed shadow root.
   * @param {string} placement  Extra inline declarations (top/right/bottom/left/inset).
   * @param {string} css  Styles for inside the shadow root.
   * @returns {{host: HTMLElement, root: ShadowRoot}}
   */
  function createHost(placement, css) {
    const host = document.createElement('div');
    host.setAttribute('style', [...HOST_STYLE, placement].join('; '));
    const root = host.attachShadow({ mode: 'closed' });
    const style = document.createElement('style');
    style.textContent = css;
    root.append(style);
    (document.body ?? document.documentElement).append(host);
    return { host, root };
  }

  veilContent.uiHost = { createHost };
})();
