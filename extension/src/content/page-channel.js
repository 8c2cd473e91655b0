// The isolated end of the channel to Veil's page-world scripts (src/page/):
// they catch files where the page gets them (file inputs in and out of the
// document, drops with their entries and handles, pastes, the file and folder
// pickers, navigator.clipboard.read()) and ask
// here, over a private MessageChannel, for the files to hand out instead: the
// same cloaking, indicator and failure prompt for every path.
//
// The channel is set up while both sides run at document_start, normally
// before any page script exists, so the page can neither see the port nor
// forge it; each side listens until it is connected (see natives.js).
'use strict';

(() => {
  const { cloakFiles, fileKinds } = veilContent;
  // The same names as in src/page/natives.js.
  const OFFER = 'veil-page-channel-offer';
  const ASK = 'veil-page-channel-ask';

  /** @param {unknown} value */
  const isBlob = (value) => /^\[object (Blob|File)\]$/.test(Object.prototype.toString.call(value));

  /**
   * @typedef {object} Batch
   * @property {unknown} id  The page-world side's id for it.
   * @property {File[]} files
   * @property {string} path
   * @property {AbortController} abort  Aborted when the page-world side cancels it (a later pick won).
   * @property {(files: File[] | null) => void} answer
   */
  /** @type {Batch[]} */
  const queue = [];
  /** @type {Batch | null} */
  let running = null;
  let draining = false;

  /**
   * One batch (the files of one pick, drop or picker read) at a time: one
   * indicator, at most one prompt each, and a later pick is answered after an
   * earlier one (the page-world side drops an answer a later pick overtook).
   */
  async function drain() {
    if (draining) return;
    draining = true;
    try {
      while (queue.length > 0) {
        const [batch] = queue.splice(0, 1);
        running = batch;
        /** @type {File[] | null} */
        let result = null;
        try {
          result = batch.files.some(fileKinds.isCloakable)
            ? await cloakFiles.protect(batch.files, batch.path, batch.abort.signal)
            : batch.files;
        } catch (error) {
          // protect() answers every failure with the prompt: this is a bug, and the page gets nothing.
          console.warn('Veil: could not protect the files', error);
        }
        running = null;
        batch.answer(batch.abort.signal.aborted ? null : result);
      }
    } finally {
      draining = false;
    }
  }

  /**
   * The page-world side will not take this batch's answer (a later pick in the
   * same input won): drop it if it is still waiting, stop its work if it runs.
   * @param {unknown} id
   */
  function cancel(id) {
    const waiting = queue.findIndex((batch) => batch.id === id);
    if (waiting >= 0) {
      const [batch] = queue.splice(waiting, 1);
      batch.abort.abort();
      batch.answer(null);
      return;
    }
    if (running && running.id === id) running.abort.abort();
  }

  /** @param {MessagePort} port */
  function serve(port) {
    port.onmessage = (event) => {
      const data = event.data;
      if (data?.kind === 'warm') {
        // The picker is open: get the transfer ready meanwhile.
        if (veilContent.transport.currentSiteState()?.enabled !== false) veilContent.bridge.warm();
      } else if (data?.kind === 'cancel') {
        cancel(data.id);
      } else if (data?.kind === 'notice' && data.code === 'folder_unreadable') {
        // Fixed texts only: whoever holds the other end must not write in Veil's name.
        veilContent.indicator.notice('Veil could not read a dropped folder: nothing was given to the page.');
      } else if (data?.kind === 'files' && Array.isArray(data.files) && data.files.length > 0 && data.files.every(isBlob)) {
        queue.push({
          id: data.id,
          abort: new AbortController(),
          files: data.files,
          path: String(data.path ?? ''),
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
  // Listening until connected: Firefox may run this script after the page's
  // own. A page that offers first only keeps Veil's page-world side
  // unconnected, which then hands the page nothing (it fails closed).
})();
