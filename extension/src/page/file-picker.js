// Runs in the page's own world (manifest "world": "MAIN"), at document_start,
// before any page script: wraps window.showOpenFilePicker() (File System
// Access API, Chromium only) so that getFile() on the handles it returns
// resolves to Veil's cloak instead of the original. The cloaking itself is
// done by the isolated content script src/content/intercept-file-picker.js
// (the same path, indicator and failure prompt as a file input), reached over
// a MessageChannel handed over before any page script could watch.
//
// This world has no extension API and nothing here is secret from the page;
// the page only ever gets what it would have got, with the cloak in place of
// the photo. What this cannot cover is in the README ("Not intercepted").
'use strict';

(() => {
  const picker = /** @type {any} */ (window).showOpenFilePicker;
  // Firefox and Safari have no showOpenFilePicker: nothing to do there.
  if (typeof picker !== 'function' || typeof FileSystemFileHandle !== 'function') return;
  // The same names as in src/content/intercept-file-picker.js.
  const OFFER = 'veil-file-picker-offer';
  const ASK = 'veil-file-picker-ask';

  // Taken now: page scripts that run later may replace the globals.
  const NativeFile = File;
  const channel = new MessageChannel();
  const port = channel.port1;
  let connected = false;

  /** Offers the port to Veil's isolated script; true when it took it (it cancels the event). */
  function offer() {
    connected = !window.dispatchEvent(new MessageEvent(OFFER, { ports: [channel.port2], cancelable: true }));
    return connected;
  }
  if (!offer()) {
    // The isolated script has not run yet: it asks when it does (still before any page script).
    const onAsk = () => {
      if (offer()) window.removeEventListener(ASK, onAsk, true);
    };
    window.addEventListener(ASK, onAsk, true);
    setTimeout(() => window.removeEventListener(ASK, onAsk, true), 0);
  }

  /** @type {Map<number, (files: Array<File | null> | null) => void>} */
  const answers = new Map();
  let nextId = 1;
  port.onmessage = (event) => {
    const data = event.data;
    const answer = answers.get(data?.id);
    if (data?.kind !== 'files' || !answer) return;
    answers.delete(data.id);
    answer(Array.isArray(data.files) ? data.files : null);
  };

  /**
   * The handles of one picker call. Files the page reads together (getFile()
   * on several handles at once) go to Veil as one batch: one indicator, and
   * at most one prompt.
   * @typedef {object} Group
   * @property {number} reading  getFile() calls still reading their original.
   * @property {Array<{original: File, answer: (file: File | null) => void}>} waiting
   */

  /** @param {Group} group */
  function flush(group) {
    if (group.reading > 0 || group.waiting.length === 0) return;
    const batch = group.waiting;
    group.waiting = [];
    /** @param {Array<File | null> | null} files */
    const answer = (files) => batch.forEach((item, index) => item.answer(files?.[index] instanceof NativeFile ? files[index] : null));
    if (!connected) {
      answer(null); // Veil's content script is not there: hand out nothing rather than the originals
      return;
    }
    const id = nextId++;
    answers.set(id, answer);
    port.postMessage({ kind: 'files', id, files: batch.map((item) => item.original) });
  }

  const getFile = FileSystemFileHandle.prototype.getFile;
  /**
   * Handles the picker returned: their group, and the answer for the file version last read.
   * @type {WeakMap<FileSystemFileHandle, {group: Group, version: string, file: Promise<File | null> | null}>}
   */
  const picked = new WeakMap();

  /**
   * @param {PropertyDescriptor | undefined} descriptor
   * @param {Function} value
   */
  const replaced = (descriptor, value) => ({
    configurable: descriptor?.configurable ?? true,
    enumerable: descriptor?.enumerable ?? true,
    writable: descriptor?.writable ?? true,
    value,
  });

  // Method shorthand: same name and length as the originals, and no prototype.
  const wrappers = {
    /** @param {unknown[]} args */
    async showOpenFilePicker(...args) {
      // Called in the same task as the page's call: the user activation still counts.
      const opened = Reflect.apply(picker, window, args);
      if (connected) port.postMessage({ kind: 'warm' });
      const handles = /** @type {FileSystemFileHandle[]} */ (await opened);
      /** @type {Group} */
      const group = { reading: 0, waiting: [] };
      for (const handle of handles) picked.set(handle, { group, version: '', file: null });
      return handles;
    },

    /** @this {FileSystemFileHandle} */
    async getFile() {
      const entry = picked.get(this);
      if (!entry) return Reflect.apply(getFile, this, []);
      const { group } = entry;
      group.reading += 1;
      /** @type {File} */
      let original;
      try {
        original = await Reflect.apply(getFile, this, []);
      } catch (error) {
        group.reading -= 1;
        flush(group); // the others read together with this one need not wait for it
        throw error;
      }
      group.reading -= 1;
      // The same answer each time the page reads the same file, a new one when it changed on disk.
      const version = `${original.name}\n${original.size}\n${original.lastModified}`;
      if (entry.version !== version || !entry.file) {
        entry.version = version;
        entry.file = new Promise((answer) => group.waiting.push({ original, answer }));
      }
      flush(group);
      const file = await entry.file;
      if (file) return file;
      entry.file = null; // cancelled: the next read asks again
      throw new DOMException('Veil did not hand over this file: the photo could not be protected.', 'NotAllowedError');
    },
  };

  const pickerOwner = Object.hasOwn(window, 'showOpenFilePicker') ? window : Object.getPrototypeOf(window);
  Object.defineProperty(
    pickerOwner,
    'showOpenFilePicker',
    replaced(Object.getOwnPropertyDescriptor(pickerOwner, 'showOpenFilePicker'), wrappers.showOpenFilePicker),
  );
  Object.defineProperty(
    FileSystemFileHandle.prototype,
    'getFile',
    replaced(Object.getOwnPropertyDescriptor(FileSystemFileHandle.prototype, 'getFile'), wrappers.getFile),
  );
})();
