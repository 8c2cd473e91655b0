// Paste of image files, in the page's own world (see natives.js). A trusted
// paste that carries photos is stopped in the capture phase on window before
// any page listener sees it; Veil has the photos cloaked and dispatches a
// paste carrying the cloaks (and the clipboard's text parts) at the same
// target. The replacement DataTransfer is made here, in the page's realm:
// Firefox hides from the page the items that an extension's content script
// adds (they carry the content script's principal). Before, the paste was
// rebuilt in the content script, and in Firefox it reached the page without
// files.
'use strict';

(() => {
  const page = veilPage;
  const { natives } = page;

  /**
   * @param {File[]} files
   * @param {Array<[string, string]>} strings  The clipboard's other data (text, HTML).
   * @param {EventTarget} target
   */
  async function repaste(files, strings, target) {
    const answers = await page.protect(files, 'paste');
    if (answers === null) return; // cancelled: the page gets nothing
    const transfer = page.toDataTransfer(answers);
    for (const [type, value] of strings) natives.setData(transfer, type, value);
    const paste = new natives.ClipboardEvent('paste', { bubbles: true, cancelable: true, composed: true, clipboardData: transfer });
    // Firefox's ClipboardEvent constructor ignores clipboardData (it makes a DataTransfer of
    // its own, empty here): the event then carries the cloaks as an own property.
    if (natives.clipboardData(paste) !== transfer) {
      natives.defineProperty(paste, 'clipboardData', { value: transfer, enumerable: true, configurable: true });
    }
    natives.dispatchEvent(target, paste);
  }

  natives.addEventListener(
    window,
    'paste',
    (/** @type {ClipboardEvent} */ event) => {
      if (!natives.eventIsTrusted(event)) return;
      const transfer = natives.clipboardData(event);
      if (!transfer) return;
      // Everything is read now: the DataTransfer is unreadable once this event returns.
      const files = page.filesOf(natives.dataTransferFiles(transfer));
      if (!page.anyCloakable(files)) return; // nothing to protect: the paste goes on untouched
      natives.preventDefault(event); // the browser must not insert the original either
      natives.stopImmediatePropagation(event);
      /** @type {Array<[string, string]>} */
      const strings = [];
      const types = natives.dataTransferTypes(transfer);
      for (let index = 0; index < types.length; index += 1) {
        if (types[index] !== 'Files') natives.push(strings, [types[index], natives.getData(transfer, types[index])]);
      }
      void repaste(files, strings, natives.composedPath(event)[0] ?? document);
    },
    true,
  );
})();
