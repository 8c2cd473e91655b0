// window.showOpenFilePicker() (File System Access API, Chromium only): the
// page gets FileSystemFileHandles, and each handle's getFile() would give it
// the original. Veil's page-world script (src/page/file-picker.js) wraps both
// in the page's own world, where the page calls them, and asks this isolated
// script, over a private MessageChannel, for the file to hand out instead:
// the same cloaking, indicator and failure prompt as every other path.
//
// The channel is set up while both scripts run at document_start, before any
// page script exists, so the page can neither see the port nor forge it; each
// side listens only until it is connected (this one not past its first task).
'use strict';

(() => {
  // Firefox and Safari have no showOpenFilePicker: nothing to do there.
  if (typeof (/** @type {any} */ (window).showOpenFilePicker) !== 'function') return;
  const { cloakFiles, fileKinds } = veilContent;
  // The same names as in src/page/file-picker.js.
  const OFFER = 'veil-file-picker-offer';
  const ASK = 'veil-file-picker-ask';

  /** @param {unknown} value */
  const isBlob = (value) => /^\[object (Blob|File)\]$/.test(Object.prototype.toString.call(value));

  /** @type {Array<{files: File[], answer: (files: File[] | null) => void}>} */
  const queue = [];
  let draining = false;

  /**
   * One batch (the files a page read together) at a time, like the files
   * picked together in an input: one indicator, at most one prompt each.
   */
  async function drain() {
    if (draining) return;
    draining = true;
    try {
      while (queue.length > 0) {
        const [batch] = queue.splice(0, 1);
        /** @type {File[] | null} */
        let result = null;
        try {
          result = batch.files.some(fileKinds.isCloakable) ? await cloakFiles.protect(batch.files) : batch.files;
        } catch (error) {
          // protect() answers every failure with the prompt: this is a bug, and the page gets nothing.
          console.warn('Veil: could not protect picked files', error);
        }
        batch.answer(result);
      }
    } finally {
      draining = false;
    }
  }

  /** @param {MessagePort} port */
  function serve(port) {
    port.onmessage = (event) => {
      const data = event.data;
      if (data?.kind === 'warm') {
        // The picker is open: get the transfer ready meanwhile.
        if (veilContent.transport.currentSiteState()?.enabled !== false) veilContent.bridge.warm();
      } else if (data?.kind === 'files' && Array.isArray(data.files) && data.files.length > 0 && data.files.every(isBlob)) {
        queue.push({
          files: data.files,
          // The cloaks, the originals where nothing is to be done, or null: give the page nothing.
          answer: (files) => port.postMessage({ kind: 'files', id: data.id, files }),
        });
        void drain();
      }
    };
  }

  let connected = false;
  /** @param {Event} event */
  function onOffer(event) {
    const port = /** @type {MessageEvent} */ (event).ports?.[0];
    if (connected || !port) return;
    connected = true;
    event.preventDefault(); // tells the page-world script its offer was taken
    window.removeEventListener(OFFER, onOffer, true);
    serve(port);
  }
  window.addEventListener(OFFER, onOffer, true);
  // In case the page-world script ran first: it offers again when asked.
  window.dispatchEvent(new Event(ASK));
  // Never listen once page scripts may run (they could forge an offer).
  setTimeout(() => window.removeEventListener(OFFER, onOffer, true), 0);
})();
