// window.showOpenFilePicker() (File System Access API, Chromium only), in the
// page's own world (see natives.js): wraps it so that getFile() on the handles
// it returns resolves to Veil's cloak instead of the original, through the
// same path, indicator and failure prompt as a file input (the isolated
// content script src/content/page-channel.js does the cloaking).
'use strict';

(() => {
  const page = veilPage;
  const { natives } = page;
  const picker = /** @type {any} */ (window).showOpenFilePicker;
  // Firefox and Safari have no showOpenFilePicker: nothing to do there.
  if (typeof picker !== 'function' || typeof FileSystemFileHandle !== 'function') return;

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
    /** @type {File[]} */
    const originals = [];
    for (let index = 0; index < batch.length; index += 1) natives.push(originals, batch[index].original);
    natives.promiseThen(page.protect(originals, 'picker'), (/** @type {File[] | null} */ files) => {
      for (let index = 0; index < batch.length; index += 1) batch[index].answer(files?.[index] ?? null);
    });
  }

  const getFile = FileSystemFileHandle.prototype.getFile;
  /**
   * Handles the picker returned: their group, and the answer for the file version last read.
   * @type {WeakMap<FileSystemFileHandle, {group: Group, version: string, file: Promise<File | null> | null}>}
   */
  const picked = new WeakMap();

  // Method shorthand: same name and length as the originals, and no prototype.
  const wrappers = {
    /** @param {unknown[]} args */
    async showOpenFilePicker(...args) {
      // Called in the same task as the page's call: the user activation still counts.
      const opened = natives.apply(picker, window, args);
      page.tell({ kind: 'warm' });
      const handles = /** @type {FileSystemFileHandle[]} */ (await opened);
      /** @type {Group} */
      const group = { reading: 0, waiting: [] };
      for (const handle of handles) picked.set(handle, { group, version: '', file: null });
      return handles;
    },

    /** @this {FileSystemFileHandle} */
    async getFile() {
      const entry = picked.get(this);
      if (!entry) return natives.apply(getFile, this, []);
      const { group } = entry;
      group.reading += 1;
      /** @type {File} */
      let original;
      try {
        original = await natives.apply(getFile, this, []);
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

  page.replace(Object.hasOwn(window, 'showOpenFilePicker') ? window : natives.getPrototypeOf(window), 'showOpenFilePicker', {
    value: wrappers.showOpenFilePicker,
  });
  page.replace(FileSystemFileHandle.prototype, 'getFile', { value: wrappers.getFile });
})();
