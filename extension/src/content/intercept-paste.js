// Paste of image files into any element: the trusted paste is cancelled and a
// paste carrying the cloaked files (and the clipboard's text parts) is
// dispatched at the same target.
'use strict';

(() => {
  const { cloakFiles } = veilContent;

  /** @param {ClipboardEvent} event */
  async function repaste(event) {
    const clipboard = /** @type {DataTransfer} */ (event.clipboardData);
    const files = Array.from(clipboard.files);
    const strings = clipboard.types.filter((type) => type !== 'Files').map((type) => [type, clipboard.getData(type)]);
    const target = cloakFiles.targetOf(event) ?? document;
    const result = await cloakFiles.protect(files);
    if (result === null) return;
    const replacement = cloakFiles.toDataTransfer(result);
    for (const [type, value] of strings) replacement.setData(type, value);
    target.dispatchEvent(
      new ClipboardEvent('paste', { bubbles: true, cancelable: true, composed: true, clipboardData: replacement }),
    );
  }

  window.addEventListener(
    'paste',
    (event) => {
      if (!event.isTrusted || !event.clipboardData) return;
      if (!cloakFiles.shouldIntercept(event.clipboardData.files)) return;
      event.preventDefault();
      event.stopImmediatePropagation();
      void repaste(event);
    },
    true,
  );
})();
