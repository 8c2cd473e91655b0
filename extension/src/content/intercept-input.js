// <input type=file>: the trusted `input` and `change` are swallowed in the
// capture phase on window, the input is emptied at once (so nothing reading
// input.files sees the original), and after cloaking it is refilled with the
// cloaked files and fresh `input`/`change` events are dispatched.
'use strict';

(() => {
  const { cloakFiles } = veilContent;
  /** Inputs whose trusted `change` is still to come and must be swallowed. */
  const awaitingChange = new WeakSet();

  /**
   * @param {Event} event
   * @returns {HTMLInputElement | null}
   */
  function fileInputOf(event) {
    const target = /** @type {HTMLInputElement} */ (cloakFiles.targetOf(event));
    return target && target.localName === 'input' && target.type === 'file' ? target : null;
  }

  /** @param {Event} event */
  function swallowChange(event) {
    const input = fileInputOf(event);
    if (!event.isTrusted || !input || !awaitingChange.has(input)) return false;
    awaitingChange.delete(input);
    event.stopImmediatePropagation();
    return true;
  }

  /**
   * @param {HTMLInputElement} input
   * @param {File[]} files
   */
  async function deliver(input, files) {
    const result = await cloakFiles.protect(files);
    if (result === null) return; // cancelled: the input stays empty and the page hears nothing
    const { timing } = veilContent;
    timing.mark('protected');
    input.files = cloakFiles.toDataTransfer(result).files;
    timing.mark('files-set');
    input.dispatchEvent(new Event('input', { bubbles: true, composed: true }));
    timing.mark('input-dispatched');
    input.dispatchEvent(new Event('change', { bubbles: true }));
    timing.mark('change-dispatched');
  }

  /** @param {Event} event */
  function intercept(event) {
    if (!event.isTrusted) return;
    if (event.type === 'change' && swallowChange(event)) return;
    const input = fileInputOf(event);
    if (!input) return;
    const files = Array.from(input.files ?? []);
    if (!cloakFiles.shouldIntercept(files)) return;
    veilContent.timing.mark('intercepted');
    event.stopImmediatePropagation();
    if (event.type === 'input') {
      awaitingChange.add(input);
      // `change` is not composed: inside a shadow root it never reaches window.
      const root = input.getRootNode();
      if (root instanceof ShadowRoot) {
        root.addEventListener('change', (change) => void swallowChange(change), { capture: true });
      }
    }
    input.files = new DataTransfer().files;
    void deliver(input, files);
  }

  // A click on a file input opens the picker: prepare the transfer meanwhile.
  window.addEventListener(
    'click',
    (event) => {
      const input = event.isTrusted ? fileInputOf(event) : null;
      if (input && veilContent.transport.currentSiteState()?.enabled !== false) veilContent.bridge.warm();
    },
    true,
  );
  window.addEventListener('input', intercept, true);
  window.addEventListener('change', intercept, true);
})();
