// The File System Access API's pickers (Chromium only), in the page's own
// world (see natives.js): window.showOpenFilePicker() and
// window.showDirectoryPicker() are wrapped so that getFile() on the file
// handles the person picked, or that the page finds in a folder they picked
// (getFileHandle(), values(), entries(), for await, in subfolders too),
// resolves to Veil's cloak instead of the original, through the same path,
// indicator and failure prompt as a file input (the isolated content script
// src/content/page-channel.js does the cloaking). Handles the page makes
// itself (its origin-private file system) are left alone.
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

  // Folders: showDirectoryPicker() and every handle reached from the folder it returned.
  const directoryPicker = /** @type {any} */ (window).showDirectoryPicker;
  const Directory = typeof FileSystemDirectoryHandle === 'function' ? FileSystemDirectoryHandle : null;
  const directoryProto = /** @type {any} */ (Directory?.prototype ?? {});
  const handleKind = page.getter(FileSystemHandle.prototype, 'kind');
  /** @type {Record<string, Function | undefined>} */
  const directoryNatives = {
    getFileHandle: directoryProto.getFileHandle,
    getDirectoryHandle: directoryProto.getDirectoryHandle,
    values: directoryProto.values,
    entries: directoryProto.entries,
    asyncIterator: directoryProto[Symbol.asyncIterator],
  };
  /**
   * Folders the person picked, and their subfolders the page opened: the group their files read in.
   * @type {WeakMap<object, Group>}
   */
  const pickedFolders = new WeakMap();

  /**
   * A handle found in a picked folder reads through Veil like a picked file.
   * @param {unknown} handle
   * @param {Group} group
   */
  function adopt(handle, group) {
    if (!handle || typeof handle !== 'object') return;
    const kind = handleKind(handle);
    if (kind === 'file' && !natives.weakMapHas(picked, handle)) {
      natives.weakMapSet(picked, handle, { group, version: '', file: null });
    } else if (kind === 'directory') {
      natives.weakMapSet(pickedFolders, handle, group);
    }
  }

  /**
   * The folder's own iterator, with each handle it yields adopted first.
   * @param {any} inner  The browser's iterator.
   * @param {Group} group
   * @param {(value: any) => unknown} handleOf  Where the handle is in each value.
   */
  function adoptingIterator(inner, group, handleOf) {
    const next = natives.getPrototypeOf(inner).next;
    const iterator = {
      async next() {
        const step = await natives.apply(next, inner, []);
        if (!step.done) adopt(handleOf(step.value), group);
        return step;
      },
      async return(/** @type {unknown} */ value) {
        return { done: true, value };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

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

  const folderWrappers = {
    /** @param {unknown[]} args */
    async showDirectoryPicker(...args) {
      // Called in the same task as the page's call: the user activation still counts.
      const opened = natives.apply(directoryPicker, window, args);
      page.tell({ kind: 'warm' });
      const folder = await opened;
      natives.weakMapSet(pickedFolders, folder, { reading: 0, waiting: [] });
      return folder;
    },

    /**
     * @this {FileSystemDirectoryHandle}
     * @param {unknown[]} args
     */
    async getFileHandle(...args) {
      const handle = await natives.apply(/** @type {Function} */ (directoryNatives.getFileHandle), this, args);
      const group = natives.weakMapGet(pickedFolders, this);
      if (group) adopt(handle, group);
      return handle;
    },

    /**
     * @this {FileSystemDirectoryHandle}
     * @param {unknown[]} args
     */
    async getDirectoryHandle(...args) {
      const handle = await natives.apply(/** @type {Function} */ (directoryNatives.getDirectoryHandle), this, args);
      const group = natives.weakMapGet(pickedFolders, this);
      if (group) adopt(handle, group);
      return handle;
    },

    /** @this {FileSystemDirectoryHandle} */
    values() {
      const inner = natives.apply(/** @type {Function} */ (directoryNatives.values), this, []);
      const group = natives.weakMapGet(pickedFolders, this);
      return group ? adoptingIterator(inner, group, (handle) => handle) : inner;
    },

    /** @this {FileSystemDirectoryHandle} */
    entries() {
      const inner = natives.apply(/** @type {Function} */ (directoryNatives.entries), this, []);
      const group = natives.weakMapGet(pickedFolders, this);
      return group ? adoptingIterator(inner, group, (pair) => pair?.[1]) : inner;
    },

    /** @this {FileSystemDirectoryHandle} */
    [Symbol.asyncIterator]() {
      const inner = natives.apply(/** @type {Function} */ (directoryNatives.asyncIterator), this, []);
      const group = natives.weakMapGet(pickedFolders, this);
      return group ? adoptingIterator(inner, group, (pair) => pair?.[1]) : inner;
    },
  };

  page.replace(Object.hasOwn(window, 'showOpenFilePicker') ? window : natives.getPrototypeOf(window), 'showOpenFilePicker', {
    value: wrappers.showOpenFilePicker,
  });
  page.replace(FileSystemFileHandle.prototype, 'getFile', { value: wrappers.getFile });
  if (typeof directoryPicker === 'function' && Directory) {
    page.replace(Object.hasOwn(window, 'showDirectoryPicker') ? window : natives.getPrototypeOf(window), 'showDirectoryPicker', {
      value: folderWrappers.showDirectoryPicker,
    });
    for (const name of /** @type {const} */ (['getFileHandle', 'getDirectoryHandle', 'values', 'entries'])) {
      page.replace(directoryProto, name, { value: folderWrappers[name] });
    }
    // Chromium's folder iterator is entries() itself: keep them one function, as the page sees them.
    page.replace(directoryProto, /** @type {any} */ (Symbol.asyncIterator), {
      value: directoryNatives.asyncIterator === directoryNatives.entries ? folderWrappers.entries : folderWrappers[Symbol.asyncIterator],
    });
  }
})();
